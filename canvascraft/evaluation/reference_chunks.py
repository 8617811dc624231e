"""FID reference statistics from per-chunk Inception features: a new training image recomputes one chunk, not all.

The reference sample (``evaluation.stage.sample_order``: the N images of smallest keyed content hash) is cut into
content-defined chunks by ``canvascraft.pieces.plan_pieces``, keyed by the brush-stack key and the source images'
sha256 list (a brushed image is a function of both). Each chunk's features are stored in the artifact root under
``fid-features/<extractor key>/<chunk key>.npy`` (extractor key = weights sha256, dims, resize), so any worker or
later run with the same images reuses them.

The statistics are exact, not approximated from per-chunk moments: the chunks' features are concatenated in
sample order and go through the same ``gaussian_stats`` as the one-shot computation (two-pass, float64), and are
kept for KID. They land in the ``ReferenceStatsCache`` under the same ``ReferenceKey`` the one-shot path builds
(``scores.reference_key``), so ``score_images`` finds them there.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from canvascraft.artifact_root import ArtifactRoot
from canvascraft.evaluation import EvaluationInputError
from canvascraft.evaluation.frechet import gaussian_stats
from canvascraft.evaluation.inception import ImageBatch, InceptionFeatureExtractor
from canvascraft.evaluation.scores import ReferenceKey, ReferenceStats, ReferenceStatsCache
from canvascraft.hashing import stable_hash
from canvascraft.ingest.manifest import ManifestEntry
from canvascraft.pieces import plan_pieces

PREFIX = "fid-features"


class ReferenceChunk(BaseModel):
    """Rows ``start:stop`` of the reference sample, named by their content; where its features are stored."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(description="Position of the chunk in the sample (display only; not part of the key).")
    key: str = Field(description="Content key: hash of the brush-stack key and the images' sha256 list.")
    features_key: str = Field(description="Artifact-root key of the chunk's features (.npy, float32 N x dims).")
    start: int
    stop: int

    @property
    def count(self) -> int:
        """Images in the chunk."""
        return self.stop - self.start


class ChunkFeatures(BaseModel):
    """What one chunk task produced (or found): where its features are, how many, whether this run computed them."""

    features_key: str
    count: int
    computed: bool
    seconds: float = 0.0


def extractor_key(weights_sha256: str, dims: int, resize: str) -> str:
    """What decides a feature vector besides the image: the weights, the tap and the resize method."""
    return stable_hash({"weights_sha256": weights_sha256, "dims": dims, "resize": resize}, length=24)


def plan_reference_chunks(
    sample_ids: Sequence[str], entries: Mapping[str, ManifestEntry], stack_key: str, extractor: str
) -> list[ReferenceChunk]:
    """Content-defined chunks of the sample (``sample_ids``: source sha256 per row, in sample order)."""
    missing = [i for i in dict.fromkeys(sample_ids) if i not in entries]
    if missing:
        raise EvaluationInputError(
            "reference sample",
            f"{len(missing)} image ids are not in the snapshot manifest (first {missing[0][:16]})",
            "ids of the shard set's dataset version",
        )
    chunks, start = [], 0
    for piece in plan_pieces([entries[i] for i in sample_ids], stack_key):
        stop = start + len(piece.entries)
        chunks.append(
            ReferenceChunk(
                index=piece.index,
                key=piece.key,
                start=start,
                stop=stop,
                features_key=f"{PREFIX}/{extractor}/{piece.key}.npy",
            )
        )
        start = stop
    return chunks


def read_chunk_features(artifacts: ArtifactRoot, chunk: ReferenceChunk, dims: int) -> np.ndarray | None:
    """A chunk's stored features, or None when absent or not ``count x dims`` (then it is recomputed)."""
    data = artifacts.get_bytes(chunk.features_key)
    if data is None:
        return None
    try:
        features = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError:  # a truncated or foreign file: recompute
        return None
    return features if features.shape == (chunk.count, dims) else None


def chunk_features(
    chunk: ReferenceChunk,
    images_uint8: ImageBatch,
    extractor: InceptionFeatureExtractor,
    artifacts: ArtifactRoot,
    *,
    batch_size: int = 32,
) -> ChunkFeatures:
    """Inception features of one chunk's images, stored in the artifact root (found there when stored before)."""
    started = time.perf_counter()
    if len(images_uint8) != chunk.count:
        raise EvaluationInputError(
            "images_uint8", f"got {len(images_uint8)} images for chunk {chunk.index} of {chunk.count}"
        )
    if read_chunk_features(artifacts, chunk, extractor.dims) is not None:
        return ChunkFeatures(features_key=chunk.features_key, count=chunk.count, computed=False)
    features = extractor.extract(images_uint8, batch_size=batch_size).astype(np.float32, copy=False)
    buffer = io.BytesIO()
    np.save(buffer, features, allow_pickle=False)
    artifacts.put_bytes(chunk.features_key, buffer.getvalue())  # atomic: a reader sees all of it or nothing
    return ChunkFeatures(
        features_key=chunk.features_key,
        count=chunk.count,
        computed=True,
        seconds=round(time.perf_counter() - started, 3),
    )


def combine_reference(
    key: ReferenceKey,
    chunks: Sequence[ReferenceChunk],
    artifacts: ArtifactRoot,
    cache: ReferenceStatsCache | None = None,
) -> ReferenceStats:
    """mu/sigma of the concatenated chunk features (exactly the one-shot statistics), stored under ``key``."""
    parts = []
    for chunk in chunks:
        features = read_chunk_features(artifacts, chunk, key.dims)
        if features is None:
            raise EvaluationInputError(
                "reference chunks",
                f"features of chunk {chunk.index} ({chunk.features_key}) "
                "are not in the artifact root; run its chunk task first",
            )
        parts.append(features)
    features = np.concatenate(parts) if parts else np.empty((0, key.dims), dtype=np.float32)
    if len(features) != key.n:
        raise EvaluationInputError(
            "reference chunks", f"hold {len(features)} feature rows for a reference of n={key.n}"
        )
    mu, sigma = gaussian_stats(features)
    if cache is not None:
        cache.put(key, mu, sigma, features)
    return ReferenceStats(key=key, mu=mu, sigma=sigma, features=features, n=key.n)
