"""Tasks of the features stage: Feast materialization and the point-in-time training-set join."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from canvascraft.features.stage import build_training_set, materialize_snapshot
from canvascraft.ingest import IngestReport, SnapshotManifest
from canvascraft.settings import get_settings
from canvascraft.spec import PipelineSpec


# Not cached: the offline store itself is the cache (only images missing from it are computed).
@task(name="materialize-features", cache_policy=NO_CACHE, log_prints=False)  # Feast prints its own report
def materialize_features(report: IngestReport, spec: PipelineSpec) -> dict[str, Any]:
    """Compute palettes for the snapshot's new images, write them offline and materialize them online."""
    return materialize_snapshot(SnapshotManifest.load(report.manifest_path), spec, get_settings())


@task(name="training-set", cache_policy=NO_CACHE)
def training_set(report: IngestReport, spec: PipelineSpec) -> dict[str, Any]:
    """Historical features of the snapshot saved as the drift reference; the spec's filters curate the set."""
    return build_training_set(SnapshotManifest.load(report.manifest_path), spec, get_settings())
