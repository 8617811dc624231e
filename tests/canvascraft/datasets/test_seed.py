"""Seeding S3 with real data: digits, Fashion-MNIST (Debian package), a user's folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from canvascraft.datasets import seed_dataset, seed_from_dir
from canvascraft.datasets.seed import FASHION_MNIST_DIR, _fashion_mnist
from canvascraft.errors import DatasetUnavailableError, SpecError
from canvascraft.ingest import ImageRules, ingest
from tests.conftest import png_bytes


def test_digits_seed_then_ingest_roundtrip(s3_client, bucket: str, tmp_path: Path) -> None:
    result = seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=40)
    assert result["objects"] == 40 and result["uploaded"] == 40 and result["labels"] == 10
    again = seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=40)
    assert again["uploaded"] == 0 and again["skipped"] == 40  # idempotent
    report = ingest([f"s3://{bucket}/digits"], s3_client, tmp_path, ImageRules())
    assert report.valid == 40 and not report.quarantined
    from canvascraft.ingest import SnapshotManifest

    entries = SnapshotManifest.load(report.manifest_path).entries
    assert {e.label for e in entries} == {str(d) for d in range(10)}
    assert {(e.width, e.height, e.mode) for e in entries} == {(8, 8, "L")}


def test_from_dir_uses_class_subfolders(s3_client, bucket: str, tmp_path: Path) -> None:
    for label in ("red", "blue"):
        (tmp_path / "src" / label).mkdir(parents=True)
        (tmp_path / "src" / label / "a.png").write_bytes(png_bytes(color=7))
    (tmp_path / "src" / "README.txt").write_text("ignored: not an image suffix")
    result = seed_from_dir(tmp_path / "src", s3_client, f"s3://{bucket}/mine")
    assert result["objects"] == 2
    report = ingest([f"s3://{bucket}/mine"], s3_client, tmp_path / "cache", ImageRules())
    from canvascraft.ingest import SnapshotManifest

    assert sorted(e.label for e in SnapshotManifest.load(report.manifest_path).entries) == ["blue", "red"]


def test_fashion_mnist_absent_names_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailableError, match="dataset-fashion-mnist"):
        next(_fashion_mnist(5, root=tmp_path))


@pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed (make apt)"
)
def test_fashion_mnist_reads_real_images() -> None:
    samples = list(_fashion_mnist(3))
    assert [s[1] for s in samples] == ["ankle-boot", "t-shirt", "t-shirt"]  # the dataset's documented first labels
    import io

    from PIL import Image

    assert Image.open(io.BytesIO(samples[0][2])).size == (28, 28)


def test_unknown_dataset_lists_allowed() -> None:
    with pytest.raises(SpecError, match="digits, fashion-mnist"):
        seed_dataset("cifar", None, "s3://b/p")
