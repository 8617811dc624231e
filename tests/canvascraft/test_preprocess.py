"""Preprocess: shards keyed by (dataset version, brush stack, seed); reruns reuse them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from canvascraft.artifact_root import ArtifactRoot
from canvascraft.brushes import BrushStack
from canvascraft.datasets import seed_dataset
from canvascraft.errors import CanvasCraftError
from canvascraft.ingest import ImageRules, SnapshotManifest, ingest
from canvascraft.preprocess import load_shards, preprocess, stack_key

STACK = [{"name": "resize", "params": {"size": 12}}, {"name": "center_crop", "params": {"size": 12}},
         {"name": "grayscale"}, {"name": "normalize"}]


@pytest.fixture
def snapshot(s3_client, bucket: str, tmp_path: Path) -> SnapshotManifest:
    seed_dataset("digits", s3_client, f"s3://{bucket}/d", limit=30)
    report = ingest([f"s3://{bucket}/d"], s3_client, tmp_path / "cache", ImageRules())
    return SnapshotManifest.load(report.manifest_path)


def test_shards_written_then_reused(snapshot: SnapshotManifest, tmp_path: Path, artifacts: ArtifactRoot) -> None:
    stack = BrushStack.from_spec(STACK)
    first = preprocess(snapshot, tmp_path / "cache", stack, artifacts, seed=0)
    assert not first.reused and first.count == 30 and first.shape == [1, 12, 12]
    assert first.key == f"shards/{snapshot.dataset_version}/{stack_key(stack, 0)}"
    images = load_shards(first, artifacts)
    assert images.shape == (30, 1, 12, 12) and images.min() >= -1 and images.max() <= 1
    assert first.image_ids == [e.sha256 for e in snapshot.entries]
    second = preprocess(snapshot, tmp_path / "cache", stack, artifacts, seed=0)
    assert second.reused and second.key == first.key
    assert torch.equal(load_shards(second, artifacts), images)


def test_another_worker_reuses_published_shards(snapshot: SnapshotManifest, tmp_path: Path,
                                                 artifacts: ArtifactRoot) -> None:
    """A second machine (empty cache, no images) finds the shard set in the root and never computes it."""
    stack = BrushStack.from_spec(STACK)
    first = preprocess(snapshot, tmp_path / "cache", stack, artifacts, seed=0)
    other = ArtifactRoot(artifacts.url, tmp_path / "other-cache", artifacts.fs.storage_options)
    # no object cache on the other machine: a recompute would fail to open the images
    second = preprocess(snapshot, tmp_path / "empty-object-cache", stack, other, seed=0)
    assert second.reused
    assert torch.equal(load_shards(second, other), load_shards(first, artifacts))


def test_key_depends_on_stack_and_on_seed_only_for_random_stacks() -> None:
    fixed = BrushStack.from_spec(STACK)
    assert stack_key(fixed, 0) == stack_key(fixed, 1)
    noisy = fixed + BrushStack.from_spec([{"name": "gaussian_noise", "params": {"noise_ratio": 0.1}}])
    assert stack_key(noisy, 0) != stack_key(noisy, 1) and stack_key(noisy, 0) != stack_key(fixed, 0)


def test_random_stack_is_reproducible_across_runs(snapshot: SnapshotManifest, tmp_path: Path) -> None:
    stack = BrushStack.from_spec(STACK + [{"name": "gaussian_noise", "params": {"noise_ratio": 0.2}}])
    root_a = ArtifactRoot(str(tmp_path / "s1"), tmp_path / "c1")
    root_b = ArtifactRoot(str(tmp_path / "s2"), tmp_path / "c2")
    a = load_shards(preprocess(snapshot, tmp_path / "cache", stack, root_a, seed=5), root_a)
    b = load_shards(preprocess(snapshot, tmp_path / "cache", stack, root_b, seed=5), root_b)
    assert torch.equal(a, b)


def test_mixed_sizes_without_resize_is_a_clear_error(s3_client, bucket: str, tmp_path: Path) -> None:
    from tests.conftest import png_bytes

    s3_client.put_object(Bucket=bucket, Key="m/a.png", Body=png_bytes((8, 8)))
    s3_client.put_object(Bucket=bucket, Key="m/b.png", Body=png_bytes((9, 8)))
    report = ingest([f"s3://{bucket}/m"], s3_client, tmp_path / "cache", ImageRules())
    with pytest.raises(CanvasCraftError, match="add a 'resize' and a 'center_crop' brush"):
        preprocess(SnapshotManifest.load(report.manifest_path), tmp_path / "cache", BrushStack(),
                   ArtifactRoot(str(tmp_path / "s"), tmp_path / "c"), seed=0)
