"""Embeddings drift: Inception pool features (the FID network) of incoming vs reference images, with Evidently.

Palettes see colour and contrast statistics; the FID network's features see content (Heusel et al. 2017 use the
same features to compare image distributions). Evidently's embeddings drift compares two sets of such vectors with
a domain classifier (``model``: ROC AUC of telling them apart, drift above 0.55 by default) or the maximum mean
discrepancy (``mmd``: here with Evidently's bootstrap at the 0.95 quantile unless a fixed threshold is set; its
fixed default 0.015 misses clear shifts of 2048-d features). Features are cached per image sha256 and extractor.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, Field

from canvascraft.errors import DriftError
from canvascraft.files import atomic_path
from canvascraft.hashing import stable_hash
from canvascraft.settings import Settings
from canvascraft.spec import EmbeddingsDriftSpec

EMBEDDING_NAME = "inception"
MIN_IMAGES = 10


class EmbeddingsDriftResult(BaseModel):
    """The embeddings verdict: method, score, threshold, decision, sizes, cost and where its report is."""

    method: str
    score: float
    threshold: float | None = Field(default=None, description="Fixed threshold (None: bootstrap quantile).")
    drifted: bool
    dims: int
    reference_images: int
    current_images: int
    seconds: float
    report_html: str | None = None


class EmbeddingCache:
    """``<root>/<extractor key>/<sha[:2]>/<sha256>.npy``: one feature vector per image and extractor settings."""

    def __init__(self, root: Path, extractor_key: dict[str, Any]) -> None:
        self.folder = Path(root) / stable_hash(extractor_key, length=16)
        self.hits = 0

    def path(self, sha256: str) -> Path:
        """Where the vector of one image lives."""
        return self.folder / sha256[:2] / f"{sha256}.npy"

    def get(self, sha256: str) -> np.ndarray | None:
        """The cached vector, or None (absent or unreadable: recomputed)."""
        try:
            vector = np.load(self.path(sha256), allow_pickle=False)
        except (OSError, ValueError):
            return None
        self.hits += 1
        return vector

    def put(self, sha256: str, vector: np.ndarray) -> None:
        """Store one vector atomically (temp file + rename), so a concurrent reader never sees half a file."""
        with atomic_path(self.path(sha256)) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.asarray(vector, dtype=np.float32))


def sample_ids(ids: list[str], limit: int, seed: int) -> list[str]:
    """At most ``limit`` ids, a seeded sample in a stable order (the same inputs give the same sample)."""
    ordered = sorted(dict.fromkeys(ids))
    if len(ordered) <= limit:
        return ordered
    chosen = np.random.default_rng(seed).choice(len(ordered), size=limit, replace=False)
    return [ordered[i] for i in sorted(chosen)]


def image_embeddings(
    ids: list[str],
    paths: dict[str, Path],
    spec: EmbeddingsDriftSpec,
    image_size: int,
    settings: Settings,
    *,
    fallback_weights: str | None = None,
) -> np.ndarray:
    """Inception features (N x dims, float32) of the images ``ids`` (raw files at ``paths``), read-through cached."""
    from canvascraft.evaluation.inception import load_feature_extractor
    from canvascraft.evaluation.inception_weights import locate_inception_weights
    from canvascraft.features.stage import load_palette_images

    cache_dir = settings.home / "cache" / "fid"
    weights = locate_inception_weights(spec.weights or fallback_weights, cache_dir=cache_dir)
    cache = EmbeddingCache(
        settings.home / "cache" / "embeddings",
        {"weights": weights.sha256, "dims": spec.dims, "resize": spec.resize, "size": image_size},
    )
    vectors: dict[str, np.ndarray] = {}
    for image_id in ids:
        if (hit := cache.get(image_id)) is not None:
            vectors[image_id] = hit
    missing = [i for i in ids if i not in vectors]
    if missing:
        absent = [i for i in missing if not paths.get(i) or not Path(paths[i]).is_file()]
        if absent:
            raise DriftError(
                f"embeddings drift: {len(absent)} of {len(ids)} images are neither in the embeddings "
                f"cache nor in the object cache under {settings.home} (e.g. {absent[0][:16]}); the train "
                "flow's ingest of the champion's data fills it"
            )
        extractor = load_feature_extractor(weights, cache_dir=cache_dir, dims=spec.dims, resize=spec.resize)
        for start in range(0, len(missing), 256):
            chunk = missing[start : start + 256]
            images = (load_palette_images([Path(paths[i]) for i in chunk], image_size) * 255).round().to(torch.uint8)
            for image_id, vector in zip(chunk, extractor.extract(images, batch_size=64), strict=True):
                cache.put(image_id, vector)
                vectors[image_id] = vector
    return np.stack([vectors[i] for i in ids]).astype(np.float32)


def _method(spec: EmbeddingsDriftSpec) -> Any:
    """Evidently's drift method object for the spec (see the module docstring for the defaults)."""
    from evidently.metrics.embeddings import MMDDriftMethod, ModelDriftMethod

    if spec.method == "model":
        return ModelDriftMethod(threshold=spec.threshold if spec.threshold is not None else 0.55)
    if spec.threshold is not None:
        return MMDDriftMethod(threshold=spec.threshold)
    return MMDDriftMethod(bootstrap=True, quantile_probability=0.95)


def compare_embeddings(
    reference: np.ndarray, current: np.ndarray, spec: EmbeddingsDriftSpec, html_path: Path | None = None
) -> EmbeddingsDriftResult:
    """Evidently's embeddings drift of ``current`` vs ``reference``; the HTML report (with its t-SNE plot) if asked."""
    import time

    for name, matrix in (("reference", reference), ("incoming", current)):
        if matrix.ndim != 2 or len(matrix) < MIN_IMAGES:
            raise DriftError(f"embeddings drift: {name} has {len(matrix)} images; at least {MIN_IMAGES} are needed")
    if reference.shape[1] != current.shape[1]:
        raise DriftError(f"embeddings drift: reference has {reference.shape[1]} dims, incoming {current.shape[1]}")
    began = time.perf_counter()
    columns = [f"f{i}" for i in range(reference.shape[1])]
    ref_frame, cur_frame = pd.DataFrame(reference, columns=columns), pd.DataFrame(current, columns=columns)
    method = _method(spec)
    score, drifted, name = method(cur_frame, ref_frame)  # Evidently's drift methods take (current, reference)
    if html_path is not None:
        from evidently import DataDefinition, Dataset, Report
        from evidently.metrics import EmbeddingsDrift

        definition = DataDefinition(embeddings={EMBEDDING_NAME: columns})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            snapshot = Report([EmbeddingsDrift(embeddings_name=EMBEDDING_NAME, drift_method=method)]).run(
                Dataset.from_pandas(cur_frame, data_definition=definition),
                Dataset.from_pandas(ref_frame, data_definition=definition),
            )
        html_path.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(html_path))  # a pathlib.Path makes save_html write nothing
    return EmbeddingsDriftResult(
        method=str(name),
        score=float(score),
        drifted=bool(drifted),
        threshold=None if spec.method == "mmd" and spec.threshold is None else float(method.threshold),
        dims=int(reference.shape[1]),
        reference_images=len(reference),
        current_images=len(current),
        seconds=round(time.perf_counter() - began, 3),
        report_html=str(html_path) if html_path else None,
    )
