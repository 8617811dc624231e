"""Comparable FID/KID scores, a reference-statistics cache and ``score_images`` tying weights, features and metrics.

FID is biased at small N (two samples of one Gaussian score about d^2 / (2N)), so a score carries what it depends
on: sample counts, feature dims, the weights' sha256, the resize method and the reference dataset version. Two
scores are comparable only when all of these match (``FidScore.comparability_key``).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from canvascraft.artifact_root import ArtifactRoot
from canvascraft.evaluation import EvaluationInputError
from canvascraft.evaluation.frechet import frechet_distance, gaussian_stats
from canvascraft.evaluation.inception import (
    FeatureDims,
    ImageBatch,
    InceptionFeatureExtractor,
    InceptionWeights,
    ResizeMode,
    load_feature_extractor,
    locate_inception_weights,
)
from canvascraft.evaluation.kid import (
    DEFAULT_SUBSET_SIZE,
    DEFAULT_SUBSETS,
    kernel_inception_distance,
)
from canvascraft.evaluation.score_records import SHA256_PATTERN, FidScore
from canvascraft.hashing import canonical_json, stable_hash

Images = ImageBatch | Sequence[ImageBatch]


class ReferenceKey(BaseModel):
    """Identity of cached reference statistics: dataset version, weights, dims, resize method, sample count, and
    the reference images themselves (``images``: sha256 of their pixels, in order; ``images_digest``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset_version: str = Field(min_length=1)
    weights_sha256: str = Field(pattern=SHA256_PATTERN)
    dims: FeatureDims
    resize: ResizeMode
    n: int = Field(ge=2)
    # Which images of the dataset version were the reference (the evaluation stage samples N of them): statistics
    # of another sample of the same version are another key. None only for keys made by hand.
    images: str | None = Field(default=None, pattern=SHA256_PATTERN)

    def digest(self) -> str:
        """File-name hash of the key."""
        return stable_hash(self.model_dump(mode="json"), length=32)


@dataclass(frozen=True)
class ReferenceStats:
    """Mean and covariance (float64) of reference features, and the float32 features when kept (for KID)."""

    key: ReferenceKey | None
    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray | None
    n: int


class ReferenceStatsCache:
    """``<root>/<digest>.npz`` files holding mu, sigma (and optionally features) per ``ReferenceKey``.

    The key is stored inside each file and checked on read, so a stale or foreign file is a miss, never a
    wrong hit. Writes are atomic (temp file + rename). With an artifact root (``for_artifacts``), the files live
    under its ``fid-reference/`` prefix and ``root`` is the local read-through copy: any worker hits.
    """

    PREFIX = "fid-reference"

    def __init__(self, root: str | Path, artifacts: ArtifactRoot | None = None) -> None:
        self.root = Path(root)
        self.artifacts = artifacts
        self.hits = 0
        self.misses = 0

    @classmethod
    def for_artifacts(cls, artifacts: ArtifactRoot) -> ReferenceStatsCache:
        """Statistics shared through the artifact root (read through ``<cache>/fid-reference``)."""
        return cls(artifacts.local(cls.PREFIX), artifacts)

    def path(self, key: ReferenceKey) -> Path:
        """Where the statistics of ``key`` live."""
        return self.root / f"{key.digest()}.npz"

    def get(self, key: ReferenceKey, *, need_features: bool = False) -> ReferenceStats | None:
        """Cached statistics for ``key`` (None on a miss, or when features are needed but were not stored)."""
        path = self.path(key)
        if self.artifacts is not None and not path.is_file():
            self.artifacts.get_bytes(f"{self.PREFIX}/{path.name}")  # fetched into the local copy when present
        try:
            with np.load(path, allow_pickle=False) as data:
                stored_key = str(data["key"])
                mu, sigma = data["mu"], data["sigma"]
                features = data["features"] if "features" in data.files else None
        except (OSError, KeyError, ValueError):  # absent, truncated or foreign file: recompute
            self.misses += 1
            return None
        if stored_key != canonical_json(key.model_dump(mode="json")) or (need_features and features is None):
            self.misses += 1
            return None
        self.hits += 1
        return ReferenceStats(key=key, mu=mu, sigma=sigma, features=features, n=key.n)

    def put(self, key: ReferenceKey, mu: np.ndarray, sigma: np.ndarray, features: np.ndarray | None = None) -> Path:
        """Store statistics (float64) and optionally features (float32) for ``key``; return the file."""
        d = key.dims
        if np.shape(mu) != (d,) or np.shape(sigma) != (d, d):
            raise EvaluationInputError("mu/sigma", f"shapes {np.shape(mu)}, {np.shape(sigma)} do not match dims={d}")
        if features is not None and np.shape(features) != (key.n, d):
            raise EvaluationInputError("features", f"shape {np.shape(features)} does not match ({key.n}, {d})")
        arrays: dict[str, np.ndarray] = {
            "key": np.array(canonical_json(key.model_dump(mode="json"))),
            "mu": np.asarray(mu, dtype=np.float64),
            "sigma": np.asarray(sigma, dtype=np.float64),
        }
        if features is not None:
            arrays["features"] = np.asarray(features, dtype=np.float32)
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)  # type: ignore[arg-type]  # numpy stubs type **kwds as allow_pickle
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        if self.artifacts is not None and not self.artifacts.is_local:
            self.artifacts.put_bytes(f"{self.PREFIX}/{path.name}", path.read_bytes())
        return path


def count_images(images: Images, field: str = "images") -> int:
    """Number of images in an array/tensor or a sequence of batches."""
    if isinstance(images, (np.ndarray, torch.Tensor)):
        return int(images.shape[0])
    if isinstance(images, Sequence):
        return sum(int(batch.shape[0]) for batch in images)
    raise EvaluationInputError(field, f"got {type(images).__name__}", "a uint8 array/tensor or a list of such batches")


def images_digest(images: Images) -> str:
    """sha256 of uint8 images, each as its shape and pixel bytes, in order (batching does not change it)."""
    digest = hashlib.sha256()
    batches = [images] if isinstance(images, (np.ndarray, torch.Tensor)) else images
    for batch in batches:
        array = batch.numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
        for image in array:
            digest.update(repr(image.shape).encode())
            digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def reference_key(
    real_uint8: Images, weights_sha256: str, dims: FeatureDims, resize: ResizeMode, dataset_version: str | None
) -> ReferenceKey:
    """The cache key of reference statistics (one rule for the one-shot and the chunked computation)."""
    if not dataset_version:
        raise EvaluationInputError("dataset_version", "is required to key the reference statistics cache")
    return ReferenceKey(
        dataset_version=dataset_version,
        weights_sha256=weights_sha256,
        dims=dims,
        resize=resize,
        n=count_images(real_uint8, "real_uint8"),
        images=images_digest(real_uint8),
    )


def reference_statistics(
    real_uint8: Images,
    extractor: InceptionFeatureExtractor,
    *,
    cache: ReferenceStatsCache | None = None,
    dataset_version: str | None = None,
    keep_features: bool = True,
    batch_size: int = 32,
    on_progress: Callable[[int], None] | None = None,
) -> ReferenceStats:
    """Reference mu/sigma (and features when ``keep_features``), from the cache when it holds this key."""
    n = count_images(real_uint8, "real_uint8")
    key = None
    if cache is not None:
        key = reference_key(real_uint8, extractor.weights.sha256, extractor.dims, extractor.resize, dataset_version)
        if (hit := cache.get(key, need_features=keep_features)) is not None:
            if on_progress:
                on_progress(n)
            return hit
    features = extractor.extract(real_uint8, batch_size=batch_size, on_progress=on_progress)
    mu, sigma = gaussian_stats(features)
    if cache is not None and key is not None:
        cache.put(key, mu, sigma, features if keep_features else None)
    return ReferenceStats(key=key, mu=mu, sigma=sigma, features=features if keep_features else None, n=n)


def score_images(
    real_uint8: Images,
    fake_uint8: Images,
    *,
    cache_dir: str | Path,
    weights: InceptionWeights | str | Path | None = None,
    dims: FeatureDims = 2048,
    resize: ResizeMode = "bilinear",
    device: str | torch.device = "cpu",
    batch_size: int = 32,
    kid: bool = True,
    kid_subsets: int = DEFAULT_SUBSETS,
    kid_subset_size: int | None = DEFAULT_SUBSET_SIZE,
    seed: int = 0,
    reference_cache: ReferenceStatsCache | None = None,
    dataset_version: str | None = None,
    s3_client: Any | None = None,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> FidScore:
    """FID (and KID) of generated vs reference uint8 images (N x 1|3 x H x W; arrays, tensors or lists of batches).

    ``weights``: located weights, a configured path / s3:// URI, or None for the default offline search;
    ``cache_dir`` holds the converted weights, the sha256 index and S3 downloads. With ``reference_cache`` and
    ``dataset_version``, reference features are computed once per (dataset, weights, dims, resize, n).
    """
    located = (
        weights
        if isinstance(weights, InceptionWeights)
        else locate_inception_weights(weights, cache_dir=cache_dir, s3_client=s3_client)
    )
    extractor = load_feature_extractor(located, cache_dir=cache_dir, dims=dims, resize=resize, device=device)
    n_fake = count_images(fake_uint8, "fake_uint8")
    if on_total:
        on_total(count_images(real_uint8, "real_uint8") + n_fake)
    real = reference_statistics(
        real_uint8,
        extractor,
        cache=reference_cache,
        dataset_version=dataset_version,
        keep_features=kid,
        batch_size=batch_size,
        on_progress=on_progress,
    )
    fake_features = extractor.extract(fake_uint8, batch_size=batch_size, on_progress=on_progress)
    mu_fake, sigma_fake = gaussian_stats(fake_features)
    fid = frechet_distance(real.mu, real.sigma, mu_fake, sigma_fake)
    kid_result = None
    if kid:
        assert real.features is not None
        kid_result = kernel_inception_distance(
            real.features, fake_features, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed
        )
    return FidScore(
        fid=fid,
        kid_mean=kid_result.mean if kid_result else None,
        kid_std=kid_result.std if kid_result else None,
        kid_subset_size=kid_result.subset_size if kid_result else None,
        n=n_fake,
        n_real=real.n,
        dims=extractor.dims,
        weights_sha256=located.sha256,
        resize=extractor.resize,
        reference=dataset_version,
    )
