"""Tasks of the features stage: plan the palette chunks, append + materialize once, the point-in-time training-set
join.

``flows/stages.py`` runs the palette tasks as one subflow: ``palettes-plan`` -> ``palette-chunk``
(``tasks/palettes.py``, Feast-free) mapped over the chunks on the stage's task runner -> ``materialize-features``.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from canvascraft.artifact_root import artifact_root
from canvascraft.features.palette_chunks import ChunkRows
from canvascraft.features.stage import (
    PalettePlan,
    build_training_set,
    finish_palettes,
    materialize_snapshot,
    plan_palettes,
)
from canvascraft.ingest import IngestReport
from canvascraft.ingest.snapshots import load_manifest
from canvascraft.outcomes import FeaturesOutcome, TrainingSelection
from canvascraft.settings import get_settings
from canvascraft.spec import PipelineSpec
from tasks.retry_policy import retry_on_io


# Not cached: what the offline store holds decides the work (only ids missing from a view are computed).
@task(
    name="palettes-plan", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_on_io
)
def plan_palettes_task(report: IngestReport, spec: PipelineSpec) -> PalettePlan:
    """Register the spec's palette views and cut the snapshot into chunks, each with the ids it must compute."""
    settings = get_settings()
    return plan_palettes(load_manifest(report.dataset_version, artifact_root(settings)), spec, settings)


@task(name="materialize-features", cache_policy=NO_CACHE, log_prints=False)  # Feast prints its own report
def materialize_features(
    report: IngestReport, spec: PipelineSpec, plan: PalettePlan | None = None, chunks: list[ChunkRows] | None = None
) -> FeaturesOutcome:
    """Append the chunks' new rows (one part file per view) and materialize them online.

    Without ``plan``/``chunks`` it runs the whole palette step in this process (plan, every chunk, append).
    """
    settings = get_settings()
    if plan is None or chunks is None:
        manifest = load_manifest(report.dataset_version, artifact_root(settings))
        return materialize_snapshot(manifest, spec, settings)
    return finish_palettes(plan, chunks, spec, settings)


@task(name="training-set", cache_policy=NO_CACHE)
def training_set(report: IngestReport, spec: PipelineSpec) -> TrainingSelection:
    """Historical features of the snapshot saved as the drift reference; the spec's filters curate the set."""
    settings = get_settings()
    manifest = load_manifest(report.dataset_version, artifact_root(settings))
    return build_training_set(manifest, spec, settings)
