"""Tasks of the drift check: compare incoming images with the champion's reference, record, push, announce."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run

from canvascraft.artifact_root import artifact_root
from canvascraft.drift import (
    DriftCheck,
    DriftResult,
    check_drift,
    drift_markdown,
    log_drift_run,
)
from canvascraft.features.stage import materialize_snapshot
from canvascraft.ingest import IngestReport
from canvascraft.ingest.snapshots import load_manifest
from canvascraft.outcomes import FeaturesOutcome
from canvascraft.settings import get_settings
from canvascraft.spec import PipelineSpec
from tasks.reporting import artifact_key
from tasks.retry_policy import retry_on_io

DRIFT_EVENT = "canvascraft.drift.detected"


@task(name="check-drift", retries=2, retry_delay_seconds=[5, 20], retry_condition_fn=retry_on_io, cache_policy=NO_CACHE)
def check_incoming(spec: PipelineSpec, incoming: str | None) -> DriftCheck:
    """Ingest the incoming prefix, compute its palettes and compare them with the champion's reference table."""
    return check_drift(spec, get_settings(), incoming)


@task(name="record-drift", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_on_io, cache_policy=NO_CACHE)
def record_drift(spec: PipelineSpec, result: DriftResult) -> DriftResult:
    """MLflow run (share, per-feature scores, HTML report) plus a markdown (and link) artifact in Prefect."""
    result = log_drift_run(get_settings(), spec, result, tags={"prefect_flow_run_id": str(flow_run.id or "")})
    create_markdown_artifact(
        key=artifact_key(spec.name, "drift"),
        markdown=drift_markdown(result),
        description=f"Drift of {result.incoming} vs dataset {result.reference_dataset_version}",
    )
    if result.report_uri and result.report_uri.startswith(("http://", "https://", "mlflow-artifacts:")):
        create_link_artifact(
            key=artifact_key(spec.name, "drift-report"), link=result.report_uri, link_text="Evidently drift report"
        )
    return result


@task(
    name="push-drift-features",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_on_io,
    cache_policy=NO_CACHE,
    log_prints=False,
)  # Feast prints a materialize report the core swallows
def push_incoming_features(report: IngestReport, spec: PipelineSpec) -> FeaturesOutcome:
    """Write the incoming images' palettes to Feast's offline store (new ids only) and materialize them online."""
    settings = get_settings()
    return materialize_snapshot(load_manifest(report.dataset_version, artifact_root(settings)), spec, settings)


@task(name="emit-drift-detected", cache_policy=NO_CACHE)
def emit_drift_detected(result: DriftResult) -> str | None:
    """Emit ``canvascraft.drift.detected``: data about the drift (share, columns, report, incoming prefix/version).

    Events are data, not commands: the payload carries no spec. The train deployment keeps its own spec and only
    accepts the incoming prefix as an extra source when it lies under that spec's ``drift.incoming``.
    """
    event = emit_event(
        event=DRIFT_EVENT,
        resource={
            "prefect.resource.id": f"canvascraft.pipeline.{result.pipeline}",
            "prefect.resource.name": result.pipeline,
            "canvascraft.dataset_version": result.reference_dataset_version or "",
            "canvascraft.incoming_dataset_version": result.incoming_dataset_version or "",
        },
        related=[
            {
                "prefect.resource.id": f"canvascraft.dataset.{result.incoming_dataset_version}",
                "prefect.resource.role": "incoming-dataset",
            },
            {
                "prefect.resource.id": f"canvascraft.dataset.{result.reference_dataset_version}",
                "prefect.resource.role": "reference-dataset",
            },
        ],
        payload={
            "drift_share": result.drift_share,
            "drift_share_threshold": result.drift_share_threshold,
            "dataset_drift": result.dataset_drift,
            "drifted_columns": result.drifted_columns,
            "scores": result.scores(),
            "raise_on": result.raise_on,
            "embeddings": result.embeddings.model_dump(mode="json") if result.embeddings else None,
            "report": result.report_uri or result.report_html,
            "report_html": result.report_html,
            "mlflow_run_id": result.mlflow_run_id,
            "incoming": result.incoming,
            "incoming_dataset_version": result.incoming_dataset_version,
            "new_images": result.new_images,
            "extra_sources": [result.incoming],
            "reference_model": result.reference_model,
            "reference_model_version": result.reference_model_version,
        },
    )
    return str(event.id) if event is not None else None
