"""Preprocess: shards keyed by (dataset version, brush stack, seed); reruns reuse them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from canvascraft.brushes import BrushStack
from canvascraft.errors import CanvasCraftError
from canvascraft.ingest import ImageRules, ingest, SnapshotManifest
from canvascraft.preprocess import load_shards, preprocess, stack_key
from canvascraft.datasets import seed_dataset

STACK = [{"name": "resize", "params": {"size": 12}}, {"name": "center_crop", "params": {"size": 12}},
         {"name": "grayscale"}, {"name": "normalize"}]


@pytest.fixture
def snapshot(s3_client, bucket: str, tmp_path: Path) -> SnapshotManifest:
    seed_dataset("digits", s3_client, f"s3://{bucket}/d", limit=30)
    report = ingest([f"s3://{bucket}/d"], s3_client, tmp_path / "cache", ImageRules())
    return SnapshotManifest.load(report.manifest_path)


def test_shards_written_then_reused(snapshot: SnapshotManifest, tmp_path: Path) -> None:
    stack = BrushStack.from_spec(STACK)
    first = preprocess(snapshot, tmp_path / "cache", stack, tmp_path / "shards", seed=0)
    assert not first.reused and first.count == 30 and first.shape == [1, 12, 12]
    images = load_shards(first)
    assert images.shape == (30, 1, 12, 12) and images.min() >= -1 and images.max() <= 1
    assert first.image_ids == [e.sha256 for e in snapshot.entries]
    second = preprocess(snapshot, tmp_path / "cache", stack, tmp_path / "shards", seed=0)
    assert second.reused and second.path == first.path
    assert torch.equal(load_shards(second.path), images)


def test_key_depends_on_stack_and_on_seed_only_for_random_stacks() -> None:
    fixed = BrushStack.from_spec(STACK)
    assert stack_key(fixed, 0) == stack_key(fixed, 1)
    noisy = fixed + BrushStack.from_spec([{"name": "gaussian_noise", "params": {"noise_ratio": 0.1}}])
    assert stack_key(noisy, 0) != stack_key(noisy, 1) and stack_key(noisy, 0) != stack_key(fixed, 0)


def test_random_stack_is_reproducible_across_runs(snapshot: SnapshotManifest, tmp_path: Path) -> None:
    stack = BrushStack.from_spec(STACK + [{"name": "gaussian_noise", "params": {"noise_ratio": 0.2}}])
    a = load_shards(preprocess(snapshot, tmp_path / "cache", stack, tmp_path / "s1", seed=5))
    b = load_shards(preprocess(snapshot, tmp_path / "cache", stack, tmp_path / "s2", seed=5))
    assert torch.equal(a, b)


def test_mixed_sizes_without_resize_is_a_clear_error(s3_client, bucket: str, tmp_path: Path) -> None:
    from tests.conftest import png_bytes

    s3_client.put_object(Bucket=bucket, Key="m/a.png", Body=png_bytes((8, 8)))
    s3_client.put_object(Bucket=bucket, Key="m/b.png", Body=png_bytes((9, 8)))
    report = ingest([f"s3://{bucket}/m"], s3_client, tmp_path / "cache", ImageRules())
    with pytest.raises(CanvasCraftError, match="add a 'resize' and a 'center_crop' brush"):
        preprocess(SnapshotManifest.load(report.manifest_path), tmp_path / "cache", BrushStack(), tmp_path / "s", seed=0)
