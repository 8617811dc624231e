"""Tasks that render a run's typed results: Prefect artifacts and the flow-run log lines (canvascraft/reports.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

from prefect import task
from prefect.artifacts import Artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from canvascraft.drift.detect import DriftResult, drift_line
from canvascraft.ingest import IngestReport
from canvascraft.outcomes import (
    Evaluation,
    FeaturesOutcome,
    PublishOutcome,
    TrainingSelection,
    TrainRunResult,
    TuneOutcome,
)
from canvascraft.preprocess import ShardSet
from canvascraft.reports import data_lines, ingest_markdown, model_lines, run_summary_markdown
from canvascraft.settings import Settings, get_settings
from canvascraft.spec import PipelineSpec
from tasks.run_log import run_logger


@task(name="report-ingest", cache_policy=NO_CACHE)
def publish_ingest_report(report: IngestReport, pipeline: str) -> str:
    """A markdown artifact with the ingest counts and every quarantined object's reason."""
    return str(
        create_markdown_artifact(
            key=artifact_key(pipeline, "ingest"),
            markdown=ingest_markdown(report),
            description=f"Ingest of dataset version {report.dataset_version}",
        )
    )


def artifact_key(pipeline: str, suffix: str) -> str:
    """A valid artifact key (lowercase letters, digits, dashes) for ``<pipeline>-<suffix>``."""
    return re.sub(r"[^a-z0-9-]", "-", f"{pipeline}-{suffix}".lower())


@task(name="report-data", cache_policy=NO_CACHE)
def summarize_data(
    spec: PipelineSpec, report: IngestReport, shards: ShardSet, features: FeaturesOutcome, selection: TrainingSelection
) -> TrainRunResult:
    """Log the data stages' counts; the run's result so far (a run without a trainer ends with it)."""
    log = run_logger(__name__)
    for line in data_lines(report, shards, features, selection):
        log.info(line)
    return TrainRunResult(
        pipeline=spec.name,
        dataset_version=report.dataset_version,
        valid=report.valid,
        quarantined=len(report.quarantined),
        shards=shards.path,
        images=shards.count,
        features=features,
        training_set=selection.without_ids(),
    )


@task(name="report-run", cache_policy=NO_CACHE)
def summarize_run(
    data: TrainRunResult,
    spec: PipelineSpec,
    mlflow_run_id: str,
    search: TuneOutcome,
    evaluation: Evaluation,
    published: PublishOutcome,
) -> TrainRunResult:
    """Log the model stages (search, scores, registered version, where the samples are); the run's result."""
    result = data.model_copy(
        update={"mlflow_run_id": mlflow_run_id, "search": search, "evaluation": evaluation, "publish": published}
    )
    log = run_logger(__name__)
    for line in model_lines(result, spec.tuner.metric):
        log.info(line)
    return result


def summary_links(result: TrainRunResult, settings: Settings | None = None) -> dict[str, str | None]:
    """URLs of the MLflow run, the registered version (MLflow server only) and the latest drift report."""
    settings = settings or get_settings()
    uri = settings.resolved_mlflow_tracking_uri.rstrip("/")
    links: dict[str, str | None] = {"mlflow_run": None, "model_version": None, "drift_report": None}
    run_id = result.mlflow_run_id
    if uri.startswith(("http://", "https://")):
        if run_id:
            try:
                from mlflow import MlflowClient

                experiment = MlflowClient(tracking_uri=uri).get_run(run_id).info.experiment_id
                links["mlflow_run"] = f"{uri}/#/experiments/{experiment}/runs/{run_id}"
            except Exception:  # noqa: BLE001 - a link is a convenience; the id is still shown
                links["mlflow_run"] = None
        published = result.publish
        if published is not None and published.published:
            links["model_version"] = f"{uri}/#/models/{published.model}/versions/{published.version}"
    pipeline = result.pipeline
    drift_link = cast("Artifact | None", Artifact.get(artifact_key(pipeline, "drift-report")))
    target = re.search(r"\]\((.+)\)\s*$", str(drift_link.data or "")) if drift_link is not None else None
    if target:  # a link artifact's data is "[text](url)"
        links["drift_report"] = target.group(1)
    else:
        reports = sorted(
            (settings.home / "reports" / "drift" / pipeline).glob("*.html"), key=lambda p: p.stat().st_mtime
        )
        links["drift_report"] = Path(reports[-1]).as_uri() if reports else None
    return links


def publish_run_summary(result: TrainRunResult, stages: dict[str, float] | None = None) -> str:
    """Markdown artifact ``<pipeline>-summary`` linking the MLflow run, the registered version and the drift report."""
    return str(
        create_markdown_artifact(
            key=artifact_key(result.pipeline, "summary"),
            markdown=run_summary_markdown(result, summary_links(result), stages),
            description="Run summary",
        )
    )


@task(name="report-drift", cache_policy=NO_CACHE)
def summarize_drift(
    result: DriftResult, event_id: str | None, features: FeaturesOutcome | None = None
) -> dict[str, Any]:
    """Log the drift check's one-line outcome; the drift_check flow's result (what its hook reads)."""
    run_logger(__name__).info(drift_line(result, event_id))
    return {
        **result.model_dump(mode="json"),
        "event_due": result.event_due,
        "event_id": event_id,
        "features": features.model_dump(include={"rows_written", "rows_materialized"}) if features else None,
    }


@task(name="report-rollback", cache_policy=NO_CACHE)
def report_rollback(registered_model: str, outcome: dict[str, Any]) -> None:
    """Log where ``@champion`` points after a rollback."""
    run_logger(__name__).info(
        "%s: @champion is now v%s (was v%s)", registered_model, outcome["champion"], outcome["replaced"]
    )
