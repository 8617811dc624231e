"""The features stage of a run: palettes for a snapshot's new images into Feast, then the training-set join.

Palettes describe the data, not its augmentation: they are computed on the raw cached images (RGB, resized to
``features.image_size``), never on brush output, so drift checks on new raw images compare like with like.

The palette step has three parts so that the middle one can run per chunk on any worker: ``plan_palettes`` (apply
the definitions, read which ids each view lacks once, cut the snapshot into content-defined chunks),
``compute_chunk_rows`` per chunk (``palette_chunks``: no Feast), and ``finish_palettes`` (one writer appends one
part file per view, then one materialization). ``materialize_snapshot`` runs the three in this process.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from canvascraft.artifact_root import artifact_root
from canvascraft.drift.reference import STATISTICS, TABLE, reference_key
from canvascraft.errors import CanvasCraftError, StorageError
from canvascraft.features.definitions import palette_set_for
from canvascraft.features.filters import apply_filters, summary_statistics
from canvascraft.features.location import feast_data_dir
from canvascraft.features.materialize import materialize
from canvascraft.features.offline import WriteReport, existing_image_ids, view_folder, write_view_rows
from canvascraft.features.palette_chunks import (  # load_palette_images: the drift modules import it from here
    ChunkRows,
    PaletteChunk,
    compute_chunks,
    load_palette_images,  # noqa: F401
    plan_palette_chunks,
    unique_entries,
)
from canvascraft.features.retrieval import historical_features
from canvascraft.features.store import apply_definitions, open_store
from canvascraft.hashing import stable_hash
from canvascraft.ingest.cache import ObjectCache
from canvascraft.ingest.manifest import SnapshotManifest
from canvascraft.outcomes import FeaturesOutcome, TrainingSelection
from canvascraft.settings import Settings
from canvascraft.spec import PipelineSpec


class PalettePlan(BaseModel):
    """The palette work of a snapshot: its views and content-defined chunks (each with the ids it must compute)."""

    feature_service: str | None
    feature_views: list[str] = Field(default_factory=list)
    images: int
    chunks: list[PaletteChunk] = Field(default_factory=list)
    seconds: dict[str, float] = Field(default_factory=dict)


def snapshot_image_ids(manifest: SnapshotManifest) -> list[str]:
    """Unique content hashes of a snapshot, in manifest order (two keys with the same bytes are one image)."""
    return [e.sha256 for e in unique_entries(manifest.entries)]


def plan_palettes(manifest: SnapshotManifest, spec: PipelineSpec, settings: Settings, store: Any = None) -> PalettePlan:
    """Apply the spec's definitions (one registry write) and cut the snapshot into chunks; views read once."""
    palette_set = palette_set_for(spec)
    images = len(unique_entries(manifest.entries))
    if not len(palette_set):
        return PalettePlan(feature_service=None, images=images)
    started = time.perf_counter()
    store = store or open_store(settings)
    timings = {"open_store": time.perf_counter() - started}
    applied = apply_definitions(store, {spec.name: palette_set}, feast_data_dir(settings))
    timings["apply"] = applied["seconds"]
    started = time.perf_counter()
    existing = [existing_image_ids(view_folder(store, p)) for p in palette_set]
    chunks = plan_palette_chunks(manifest.entries, palette_set, existing)
    timings["plan"] = time.perf_counter() - started
    return PalettePlan(
        feature_service=spec.name,
        feature_views=applied["views"],
        images=images,
        chunks=chunks,
        seconds={k: round(v, 3) for k, v in timings.items()},
    )


def append_chunk_rows(store: Any, spec: PipelineSpec, rows: Sequence[ChunkRows]) -> WriteReport:
    """One part file per view with the chunks' rows that view lacks (one writer: no per-chunk part files)."""
    started = time.perf_counter()
    frames = [r.frame for r in rows if r.frame is not None and len(r.frame)]
    views = []
    if frames:
        frame = pd.concat(frames, ignore_index=True)
        views = [write_view_rows(store, palette, frame) for palette in palette_set_for(spec)]
    return WriteReport(
        views=views,
        images_requested=sum(r.images for r in rows),
        rows_computed=sum(v.rows_computed for v in views),
        rows_written=sum(v.rows_written for v in views),
        seconds=round(time.perf_counter() - started, 3),
    )


def finish_palettes(
    plan: PalettePlan, rows: Sequence[ChunkRows], spec: PipelineSpec, settings: Settings, store: Any = None
) -> FeaturesOutcome:
    """Append the chunks' rows and materialize once; the stage's summary (counts, timings)."""
    if plan.feature_service is None:
        return FeaturesOutcome(images=plan.images)
    if [r.key for r in rows] != [c.key for c in plan.chunks]:
        raise CanvasCraftError(
            f"palettes of {spec.name!r}: {len(rows)} chunk results do not match the "
            f"{len(plan.chunks)} planned chunks, in order"
        )
    store = store or open_store(settings)
    written = append_chunk_rows(store, spec, rows)
    materialized = materialize(store, palette_set_for(spec))
    timings = {
        **plan.seconds,
        "compute": round(sum(r.seconds for r in rows), 3),
        "write": written.seconds,
        "materialize": materialized.seconds,
    }
    return FeaturesOutcome(
        feature_service=plan.feature_service,
        feature_views=plan.feature_views,
        images=plan.images,
        images_new=sum(r.computed for r in rows),
        rows_computed=written.rows_computed,
        rows_written=written.rows_written,
        rows_materialized=materialized.rows,
        materialize_rows_per_second=materialized.rows_per_second,
        chunks=len(plan.chunks),
        chunks_computed=sum(1 for r in rows if r.computed),
        seconds=timings,
    )


def materialize_snapshot(
    manifest: SnapshotManifest, spec: PipelineSpec, settings: Settings, *, max_workers: int = 1
) -> FeaturesOutcome:
    """Apply definitions, compute+write palettes for images not yet offline, materialize: all in this process
    (chunks on ``max_workers`` threads)."""
    palette_set = palette_set_for(spec)
    store = open_store(settings) if len(palette_set) else None
    plan = plan_palettes(manifest, spec, settings, store)
    cache = ObjectCache(settings.home / "cache")
    paths = {i: cache.object_path(i) for c in plan.chunks for i in c.missing}
    rows = compute_chunks(plan.chunks, palette_set, paths, max_workers=max_workers)
    return finish_palettes(plan, rows, spec, settings, store)


def training_set_key(kept_ids: list[str]) -> str:
    """Artifact-root key of a curated training set's image ids (content-addressed: the ids decide the key)."""
    return f"training-sets/{stable_hash(kept_ids, length=24)}.json"


def build_training_set(manifest: SnapshotManifest, spec: PipelineSpec, settings: Settings) -> TrainingSelection:
    """Point-in-time join of the snapshot's features; save table + statistics as drift reference; apply filters."""
    palette_set = palette_set_for(spec)
    ids = snapshot_image_ids(manifest)
    if not len(palette_set):  # no palettes: no reference table, every image is kept
        return TrainingSelection(rows=len(ids), kept_image_ids=ids, kept=len(ids))
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
    return TrainingSelection(
        reference_table=str(folder / TABLE),
        reference_statistics=str(folder / STATISTICS),
        reference_uri=artifacts.uri(folder_key),
        kept_ids_key=kept_key,
        rows=retrieval.rows,
        rows_missing=retrieval.rows_missing,
        kept_image_ids=kept_ids,
        kept=filtered.rows_kept,
        dropped=filtered.rows_in - filtered.rows_kept,
        filters=[f.model_dump() for f in filtered.filters],
        seconds=retrieval.seconds,
    )
