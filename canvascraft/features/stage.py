"""The features stage of a run: palettes for a snapshot's new images into Feast, then the training-set join.

Palettes describe the data, not its augmentation: they are computed on the raw cached images (RGB, resized to
``features.image_size``), never on brush output, so drift checks on new raw images compare like with like.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torchvision.transforms.v2 import functional as F

from canvascraft.artifact_root import artifact_root
from canvascraft.drift.reference import STATISTICS, TABLE, reference_key
from canvascraft.errors import StorageError
from canvascraft.features.definitions import palette_set_for
from canvascraft.features.store import (
    apply_definitions,
    apply_filters,
    feast_data_dir,
    historical_features,
    materialize,
    missing_image_ids,
    open_store,
    summary_statistics,
    write_new_features,
)
from canvascraft.hashing import stable_hash
from canvascraft.ingest.cache import ObjectCache
from canvascraft.ingest.manifest import SnapshotManifest
from canvascraft.palettes import PaletteSet
from canvascraft.preprocess import load_image
from canvascraft.settings import Settings
from canvascraft.spec import PipelineSpec


def load_palette_images(paths: list[Path], size: int) -> torch.Tensor:
    """Raw images as one float RGB batch in [0, 1], resized (antialiased bilinear) to ``size`` x ``size``."""
    if not paths:
        return torch.empty(0, 3, size, size)
    return torch.stack([F.resize(load_image(p), [size, size], antialias=True).clamp(0, 1) for p in paths])


def compute_and_write(store: Any, palette_set: PaletteSet, image_ids: list[str], paths: dict[str, Path]) -> Any:
    """Write palettes of the images missing from each view, loading raw images once per palette resolution."""
    from canvascraft.features.store import WriteReport

    reports = []
    for size in sorted({p.image_size for p in palette_set}):
        group = PaletteSet([p for p in palette_set if p.image_size == size])
        missing = missing_image_ids(store, group, image_ids)
        images = load_palette_images([paths[i] for i in missing], size)
        reports.append(write_new_features(store, images, missing, group))
    return WriteReport(
        views=[v for r in reports for v in r.views], images_requested=len(image_ids),
        rows_computed=sum(r.rows_computed for r in reports), rows_written=sum(r.rows_written for r in reports),
        seconds=round(sum(r.seconds for r in reports), 3),
    )


def snapshot_image_ids(manifest: SnapshotManifest) -> list[str]:
    """Unique content hashes of a snapshot, in manifest order (two keys with the same bytes are one image)."""
    return list(dict.fromkeys(e.sha256 for e in manifest.entries))


def materialize_snapshot(manifest: SnapshotManifest, spec: PipelineSpec, settings: Settings) -> dict[str, Any]:
    """Apply definitions, compute+write palettes for images not yet offline, materialize into the online store."""
    palette_set = palette_set_for(spec)
    if not len(palette_set):
        return {"feature_service": None, "feature_views": [], "images": len(snapshot_image_ids(manifest)),
                "images_new": 0, "rows_computed": 0, "rows_written": 0, "rows_materialized": 0,
                "materialize_rows_per_second": 0.0, "seconds": {}}
    timings: dict[str, float] = {}
    started = time.perf_counter()
    store = open_store(settings)
    timings["open_store"] = time.perf_counter() - started
    applied = apply_definitions(store, {spec.name: palette_set}, feast_data_dir(settings))
    timings["apply"] = applied["seconds"]
    ids = snapshot_image_ids(manifest)
    cache = ObjectCache(settings.home / "cache")
    t0 = time.perf_counter()
    written = compute_and_write(store, palette_set, ids, {i: cache.object_path(i) for i in ids})
    timings["load_compute_write"] = time.perf_counter() - t0
    materialized = materialize(store, palette_set)
    timings["materialize"] = materialized.seconds
    return {
        "feature_service": spec.name,
        "feature_views": applied["views"],
        "images": len(ids),
        "images_new": max((v.rows_computed for v in written.views), default=0),
        "rows_computed": written.rows_computed,
        "rows_written": written.rows_written,
        "rows_materialized": materialized.rows,
        "materialize_rows_per_second": materialized.rows_per_second,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }


def training_set_key(kept_ids: list[str]) -> str:
    """Artifact-root key of a curated training set's image ids (content-addressed: the ids decide the key)."""
    return f"training-sets/{stable_hash(kept_ids, length=24)}.json"


def build_training_set(manifest: SnapshotManifest, spec: PipelineSpec, settings: Settings) -> dict[str, Any]:
    """Point-in-time join of the snapshot's features; save table + statistics as drift reference; apply filters."""
    palette_set = palette_set_for(spec)
    ids = snapshot_image_ids(manifest)
    if not len(palette_set):  # no palettes: no reference table, every image is kept
        return {"reference_table": None, "reference_statistics": None, "rows": len(ids), "rows_missing": 0,
                "kept_image_ids": ids, "kept": len(ids), "dropped": 0, "filters": [], "seconds": 0.0}
    store = open_store(settings)
    frame, retrieval = historical_features(store, ids, spec.name)
    artifacts = artifact_root(settings)
    folder_key = reference_key(manifest.dataset_version, palette_set)
    if not artifacts.has_folder(folder_key):  # keyed by what produced it: an existing reference is this one
        with tempfile.TemporaryDirectory() as tmp:
            frame.to_parquet(Path(tmp) / TABLE, index=False)
            (Path(tmp) / STATISTICS).write_text(json.dumps(summary_statistics(frame), indent=1))
            artifacts.put_folder(folder_key, Path(tmp))
    folder = artifacts.folder(folder_key)
    if folder is None:
        raise StorageError(f"reference {artifacts.uri(folder_key)} vanished right after it was published")
    kept, filtered = apply_filters(frame, spec.features.filters)
    kept_ids = kept["image_id"].astype(str).tolist()
    kept_key = training_set_key(kept_ids)
    artifacts.put_json(kept_key, kept_ids)  # trials on any Ray node read the curated ids from here
    return {
        "reference_table": str(folder / TABLE),
        "reference_statistics": str(folder / STATISTICS),
        "reference_uri": artifacts.uri(folder_key),
        "kept_ids_key": kept_key,
        "rows": retrieval.rows,
        "rows_missing": retrieval.rows_missing,
        "kept_image_ids": kept_ids,
        "kept": filtered.rows_kept,
        "dropped": filtered.rows_in - filtered.rows_kept,
        "filters": [f.model_dump() for f in filtered.filters],
        "seconds": retrieval.seconds,
    }
