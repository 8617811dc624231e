"""score_images end to end: torchmetrics agreement, noise monotonicity, reference cache keys, comparability."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from canvascraft.evaluation import EvaluationInputError
from canvascraft.evaluation.frechet import frechet_distance, gaussian_stats
from canvascraft.evaluation.inception import InceptionFeatureExtractor, InceptionWeights, torch_fidelity_weights_path
from canvascraft.evaluation.scores import FidScore, ReferenceKey, ReferenceStatsCache, score_images

from .conftest import digits_uint8

SHA_A, SHA_B = "a" * 64, "b" * 64


def test_torchmetrics_documented_example(
    extractor64: InceptionFeatureExtractor, fid_weights: InceptionWeights, fid_cache_dir: Path
) -> None:
    """torchmetrics' FrechetInceptionDistance docstring: feature=64, these 2 x 100 images -> tensor(12.6388)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    torch.manual_seed(42)  # torchmetrics' doctest seed
    # Built as in the docstring (its weight initialisation draws from the global RNG before the images are drawn);
    # pointed at the local weights instead of downloading. Its own forward is not run here (the digits test does).
    FrechetInceptionDistance(
        feature=64, feature_extractor_weights_path=str(torch_fidelity_weights_path(fid_weights, fid_cache_dir))
    )
    imgs_dist1 = torch.randint(0, 200, (100, 3, 299, 299), dtype=torch.uint8)
    imgs_dist2 = torch.randint(100, 255, (100, 3, 299, 299), dtype=torch.uint8)
    real, fake = extractor64.extract(imgs_dist1), extractor64.extract(imgs_dist2)
    fid = frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))
    assert fid == pytest.approx(12.6388, abs=1e-4)


def test_agrees_with_torchmetrics_on_resized_digits(
    fid_weights: InceptionWeights, fid_cache_dir: Path, empty_hub: Path
) -> None:
    """Same images through torchmetrics (pointed at the local weights, TF-style resize) and score_images."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, fake = digits_uint8(20, start=0), digits_uint8(20, start=20)
    metric = FrechetInceptionDistance(
        feature=64,
        feature_extractor_weights_path=str(torch_fidelity_weights_path(fid_weights, fid_cache_dir)),
        antialias=False,  # torchmetrics' default antialiased resize is not the reference FID resize
    )
    metric.update(torch.from_numpy(real).expand(-1, 3, -1, -1), real=True)
    metric.update(torch.from_numpy(fake).expand(-1, 3, -1, -1), real=False)
    expected = float(metric.compute())
    score = score_images(real, fake, cache_dir=fid_cache_dir, weights=fid_weights, dims=64, kid=False)
    assert score.fid == pytest.approx(expected, rel=1e-3)
    assert (score.n, score.n_real, score.dims, score.resize) == (20, 20, 64, "bilinear")
    assert score.weights_sha256 == fid_weights.sha256 and score.kid_mean is None


def test_fid_is_zero_for_identical_sets_and_grows_with_noise(extractor64: InceptionFeatureExtractor) -> None:
    real = digits_uint8(24)
    real_features = extractor64.extract(real)
    mu, sigma = gaussian_stats(real_features)
    noise = np.random.default_rng(0).standard_normal(real.shape)
    fids = []
    for level in (0.0, 20.0, 50.0, 100.0):
        noisy = np.clip(real.astype(np.float64) + level * noise, 0, 255).round().astype(np.uint8)
        features = real_features if level == 0 else extractor64.extract(noisy)
        fids.append(frechet_distance(mu, sigma, *gaussian_stats(features)))
    assert fids[0] == pytest.approx(0.0, abs=1e-6)
    assert all(later > earlier for earlier, later in itertools.pairwise(fids)), fids


def test_score_images_reports_kid_and_uses_the_reference_cache(
    fid_weights: InceptionWeights, fid_cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, fake = digits_uint8(12, start=100), digits_uint8(12, start=200)
    cache = ReferenceStatsCache(tmp_path / "refstats")
    extracted: list[int] = []
    original = InceptionFeatureExtractor.extract

    def counting(self: InceptionFeatureExtractor, images, **kwargs):  # type: ignore[no-untyped-def]
        features = original(self, images, **kwargs)
        extracted.append(len(features))
        return features

    monkeypatch.setattr(InceptionFeatureExtractor, "extract", counting)
    common = {
        "cache_dir": fid_cache_dir,
        "weights": fid_weights,
        "dims": 64,
        "reference_cache": cache,
        "kid_subsets": 20,
    }
    totals: list[int] = []
    first = score_images(real, fake, dataset_version="digits-v1", on_total=totals.append, **common)
    assert (cache.hits, cache.misses, extracted) == (0, 1, [12, 12]) and totals == [24]
    second = score_images(real, fake, dataset_version="digits-v1", **common)
    assert (cache.hits, cache.misses, extracted) == (1, 1, [12, 12, 12])  # reference features came from the cache
    assert second == first
    assert first.kid_mean is not None and first.kid_std is not None and first.kid_subset_size == 12
    assert first.reference == "digits-v1" and first.comparable_with(second)

    score_images(real, fake, dataset_version="digits-v2", **common)  # another dataset version: a miss
    assert (cache.hits, cache.misses) == (1, 2)
    with pytest.raises(EvaluationInputError, match="dataset_version"):
        score_images(real, fake, **common)


def test_reference_cache_is_keyed_by_every_field(tmp_path: Path) -> None:
    cache = ReferenceStatsCache(tmp_path)
    key = ReferenceKey(dataset_version="v1", weights_sha256=SHA_A, dims=64, resize="bilinear", n=10)
    mu, sigma = np.arange(64.0), np.eye(64)
    assert cache.get(key) is None and cache.misses == 1
    cache.put(key, mu, sigma)
    hit = cache.get(key)
    assert hit is not None and cache.hits == 1
    np.testing.assert_array_equal(hit.mu, mu)
    np.testing.assert_array_equal(hit.sigma, sigma)
    assert hit.features is None and cache.get(key, need_features=True) is None  # KID needs the features

    for change in (
        {"dataset_version": "v2"},
        {"weights_sha256": SHA_B},
        {"dims": 192},
        {"resize": "bicubic"},
        {"n": 11},
    ):
        assert cache.get(key.model_copy(update=change)) is None, change

    features = np.ones((10, 64), dtype=np.float32)
    cache.put(key, mu, sigma, features)
    hit = cache.get(key, need_features=True)
    assert hit is not None and hit.features is not None and hit.features.shape == (10, 64)


def test_reference_cache_treats_foreign_or_corrupt_files_as_misses(tmp_path: Path) -> None:
    cache = ReferenceStatsCache(tmp_path)
    key = ReferenceKey(dataset_version="v1", weights_sha256=SHA_A, dims=64, resize="bilinear", n=10)
    other = key.model_copy(update={"n": 12})
    cache.put(other, np.zeros(64), np.eye(64))
    cache.path(other).rename(cache.path(key))  # right name, wrong content
    assert cache.get(key) is None
    cache.path(key).write_bytes(b"truncated")
    assert cache.get(key) is None
    with pytest.raises(EvaluationInputError, match="dims=64"):
        cache.put(key, np.zeros(32), np.eye(32))


def test_fid_scores_compare_only_on_equal_settings() -> None:
    base = FidScore(fid=10.0, n=100, n_real=500, dims=2048, weights_sha256=SHA_A, resize="bilinear", reference="v1")
    assert base.comparable_with(base.model_copy(update={"fid": 3.0, "kid_mean": 0.1}))
    assert base.comparability_key() == (100, 500, 2048, SHA_A, "bilinear", "v1", None)  # no classifier part
    for change in (
        {"n": 50},
        {"n_real": 400},
        {"dims": 64},
        {"weights_sha256": SHA_B},
        {"resize": "bicubic"},
        {"reference": "v2"},
    ):
        other = base.model_copy(update=change)
        assert not base.comparable_with(other), change
        assert list(base.incomparable_fields(other)) == list(change)
    with pytest.raises(ValidationError):
        FidScore(fid=1.0, n=10, dims=2048, weights_sha256="nothex", resize="bilinear")
    with pytest.raises(ValidationError):
        FidScore(fid=1.0, n=10, dims=100, weights_sha256=SHA_A, resize="bilinear")  # type: ignore[arg-type]
