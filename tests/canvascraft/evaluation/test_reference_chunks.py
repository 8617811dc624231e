"""FID reference statistics from per-chunk features: equal to the one-shot statistics (real 64-d Inception on a few
digits), a grown set recomputes one chunk, the content-ranked sample is stable, and the key names the images."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from canvascraft import pieces
from canvascraft.artifact_root import ArtifactRoot
from canvascraft.evaluation.inception import InceptionFeatureExtractor
from canvascraft.evaluation.reference_chunks import (
    chunk_features,
    combine_reference,
    extractor_key,
    plan_reference_chunks,
)
from canvascraft.evaluation.scores import ReferenceStatsCache, images_digest, reference_key, reference_statistics
from canvascraft.evaluation.stage import sample_order
from canvascraft.ingest.manifest import ManifestEntry

from .conftest import digits_uint8

STACK = "stack-key"


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 2..16 images ending after 1 in 4 images by content, so a dozen images make several."""
    monkeypatch.setattr(pieces, "MIN_SIZE", 2)
    monkeypatch.setattr(pieces, "DIVISOR", 4)
    monkeypatch.setattr(pieces, "MAX_SIZE", 16)


def entries_for(images: np.ndarray) -> tuple[list[str], dict[str, ManifestEntry]]:
    """A content id per image (sha256 of its pixels) and a manifest entry for each."""
    ids = [hashlib.sha256(image.tobytes()).hexdigest() for image in images]
    entries = {
        i: ManifestEntry(
            uri=f"s3://b/{i[:8]}.png", key=f"{i[:8]}.png", etag=i[:32], sha256=i, size=1, width=32, height=32, mode="L"
        )
        for i in ids
    }
    return ids, entries


def chunked(images: np.ndarray, extractor, artifacts: ArtifactRoot, cache: ReferenceStatsCache | None = None):
    """Plan, compute every chunk, combine: the reference statistics as the fid-reference stage makes them."""
    ids, entries = entries_for(images)
    chunks = plan_reference_chunks(
        ids, entries, STACK, extractor_key(extractor.weights.sha256, extractor.dims, extractor.resize)
    )
    results = [chunk_features(c, images[c.start : c.stop], extractor, artifacts) for c in chunks]
    key = reference_key(images, extractor.weights.sha256, extractor.dims, extractor.resize, "digits/stack")
    return chunks, results, combine_reference(key, chunks, artifacts, cache)


def test_chunked_statistics_equal_the_one_shot_ones(extractor64: InceptionFeatureExtractor, tmp_path: Path) -> None:
    real = digits_uint8(12, start=300)  # real 64-d Inception features: ~23 images/s here, so a dozen images
    artifacts = ArtifactRoot(str(tmp_path / "root"), tmp_path / "cache")
    cache = ReferenceStatsCache.for_artifacts(artifacts)
    chunks, results, stats = chunked(real, extractor64, artifacts, cache)
    assert len(chunks) >= 2 and all(r.computed for r in results)
    assert [c.start for c in chunks] == [0] + [c.stop for c in chunks[:-1]] and chunks[-1].stop == 12

    one_shot = reference_statistics(real, extractor64)  # every image in one extract call, no cache
    assert np.abs(stats.mu - one_shot.mu).max() <= 1e-6
    assert np.abs(stats.sigma - one_shot.sigma).max() <= 1e-6
    # the evaluation's one-shot path builds the same key and finds these statistics in the cache
    hit = reference_statistics(real, extractor64, cache=cache, dataset_version="digits/stack")
    assert cache.hits == 1 and np.array_equal(hit.mu, stats.mu) and hit.features is not None


class CountingExtractor:
    """A tiny stand-in for the Inception network (this test is about chunking, not features): 64 block means of
    each image, and how many images it was asked for."""

    dims, resize = 64, "bilinear"

    def __init__(self) -> None:
        self.weights = type("Weights", (), {"sha256": "c" * 64})()
        self.images = 0

    def extract(self, images: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
        self.images += len(images)
        blocks = torch.as_tensor(images, dtype=torch.float32).mean(1).reshape(len(images), 8, 4, 8, 4)
        return blocks.mean((2, 4)).reshape(len(images), 64).numpy()


def test_a_grown_set_recomputes_one_chunk(tmp_path: Path) -> None:
    artifacts = ArtifactRoot(str(tmp_path / "root"), tmp_path / "cache")
    extractor = CountingExtractor()
    digits = digits_uint8(31, start=0)
    before = digits[np.array(sample_order(torch.from_numpy(digits[:30]), 100, seed=1))]  # N >= set size: all 30
    chunks_before, _, _ = chunked(before, extractor, artifacts)
    assert extractor.images == 30

    extractor.images = 0
    after = digits[np.array(sample_order(torch.from_numpy(digits), 100, seed=1))]  # digit 30 joins the set
    chunks_after, results, stats = chunked(after, extractor, artifacts)
    # digit 30 is not itself a boundary here (one that is splits its chunk in two: two new keys)
    assert [r.computed for r in results].count(True) == 1  # one chunk's features computed, the others read
    changed = [c for c in chunks_after if c.key not in {b.key for b in chunks_before}]
    assert len(changed) == 1 and extractor.images == changed[0].count
    np.testing.assert_array_equal(stats.features, extractor.extract(after))  # the stored rows, in sample order


def test_content_ranked_sample_changes_by_at_most_one_image_when_the_set_grows() -> None:
    images = torch.from_numpy(digits_uint8(60, start=500, size=8))
    entered = 0
    for extra in range(40, 60):
        base = set(sample_order(images[:40], 10, seed=3))
        grown = set(sample_order(torch.cat([images[:40], images[extra : extra + 1]]), 10, seed=3))
        assert len(grown - base) <= 1 and len(base - grown) <= 1
        entered += 40 in grown
    assert 0 < entered < 20  # the new image sometimes enters (uniform sample), sometimes not
    assert sample_order(images, 10, seed=3) != sample_order(images, 10, seed=4)


def test_reference_key_names_the_images_not_their_batching() -> None:
    a, b = digits_uint8(6, start=0), digits_uint8(6, start=6)
    assert images_digest(a) == images_digest([a[:2], a[2:]]) == images_digest(torch.from_numpy(a))
    key_a = reference_key(a, "a" * 64, 64, "bilinear", "v1")
    assert key_a.images == images_digest(a) and key_a.n == 6
    assert reference_key(b, "a" * 64, 64, "bilinear", "v1").digest() != key_a.digest()
    assert reference_key(a[::-1].copy(), "a" * 64, 64, "bilinear", "v1").digest() != key_a.digest()  # order (KID)
