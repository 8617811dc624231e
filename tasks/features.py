"""Tasks of the features stage: Feast materialization and the point-in-time training-set join."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from canvascraft.artifact_root import artifact_root
from canvascraft.features.stage import build_training_set, materialize_snapshot
from canvascraft.ingest import IngestReport
from canvascraft.ingest.snapshots import load_manifest
from canvascraft.settings import get_settings
from canvascraft.spec import PipelineSpec


# Not cached: the offline store itself is the cache (only images missing from it are computed).
@task(name="materialize-features", cache_policy=NO_CACHE, log_prints=False)  # Feast prints its own report
def materialize_features(report: IngestReport, spec: PipelineSpec) -> dict[str, Any]:
    """Compute palettes for the snapshot's new images, write them offline and materialize them online."""
    settings = get_settings()
    return materialize_snapshot(load_manifest(report.dataset_version, artifact_root(settings)), spec, settings)


@task(name="training-set", cache_policy=NO_CACHE)
def training_set(report: IngestReport, spec: PipelineSpec) -> dict[str, Any]:
    """Historical features of the snapshot saved as the drift reference; the spec's filters curate the set."""
    settings = get_settings()
    return build_training_set(load_manifest(report.dataset_version, artifact_root(settings)), spec, settings)
