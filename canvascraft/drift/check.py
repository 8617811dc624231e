"""One drift check end to end in the core: incoming prefix -> palettes -> compare with the champion's reference."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from canvascraft.drift.detect import DriftResult, compare_features
from canvascraft.drift.incoming import incoming_features
from canvascraft.drift.reference import ReferenceLocation, locate_reference, palette_set_of
from canvascraft.errors import DriftError
from canvascraft.ingest import IngestReport
from canvascraft.settings import Settings
from canvascraft.spec import PipelineSpec

SCORE_PREFIX = "drift_score."


class DriftCheck(BaseModel):
    """A drift result with the ingest report of the incoming prefix (its manifest feeds Feast)."""

    result: DriftResult
    incoming_report: IngestReport
    reference: ReferenceLocation


def incoming_uri(spec: PipelineSpec, override: str | None = None) -> str:
    """``--incoming`` when given, else ``spec.drift.incoming``; an error names both when neither is set."""
    uri = override or spec.drift.incoming
    if not uri:
        raise DriftError(f"spec {spec.name!r}: drift.incoming is not set and no incoming prefix was given; "
                         "set drift.incoming: s3://BUCKET/PREFIX in the spec or pass --incoming s3://...")
    if not uri.startswith("s3://"):
        raise DriftError(f"incoming prefix {uri!r} is not an s3://bucket/prefix URI")
    return uri


def report_path(settings: Settings, spec: PipelineSpec, reference_version: str, incoming_version: str) -> Path:
    """``<home>/reports/drift/<pipeline>/<reference dataset version>-vs-<incoming dataset version>.html``."""
    return settings.home / "reports" / "drift" / spec.name / f"{reference_version}-vs-{incoming_version}.html"


def check_drift(spec: PipelineSpec, settings: Settings, incoming: str | None = None) -> DriftCheck:
    """Compare the incoming prefix's palettes with the champion's reference table; write the HTML report."""
    uri = incoming_uri(spec, incoming)
    reference = locate_reference(spec, settings)
    current = incoming_features(spec, settings, uri, palette_set_of(spec))
    html = report_path(settings, spec, reference.dataset_version, current.report.dataset_version)
    result = compare_features(pd.read_parquet(reference.table), current.frame, spec.drift, html)
    result = result.model_copy(update={
        "pipeline": spec.name, "reference_dataset_version": reference.dataset_version,
        "reference_model": reference.model, "reference_model_version": reference.version,
        "reference_table": reference.table, "incoming": uri,
        "incoming_dataset_version": current.report.dataset_version,
    })
    return DriftCheck(result=result, incoming_report=current.report, reference=reference)


def log_drift_run(settings: Settings, spec: PipelineSpec, result: DriftResult,
                  tags: dict[str, str] | None = None) -> DriftResult:
    """An MLflow run in the pipeline's experiment: drift share, per-feature scores, the HTML report as artifact."""
    import mlflow

    from canvascraft import tracking

    tracking.ensure_experiment(settings, spec.name)
    run_tags = {"canvascraft.kind": "drift", "pipeline": spec.name, **(tags or {})}
    with mlflow.start_run(run_name=f"drift-{result.incoming_dataset_version or 'incoming'}", tags=run_tags) as run:
        mlflow.log_params({"reference_dataset_version": result.reference_dataset_version,
                           "incoming_dataset_version": result.incoming_dataset_version, "incoming": result.incoming,
                           "method": result.method or "evidently-default", "threshold": result.threshold,
                           "drift_share_threshold": result.drift_share_threshold,
                           "reference_model": f"{result.reference_model}/{result.reference_model_version}"})
        mlflow.log_metrics({"drift_share": result.drift_share, "dataset_drift": float(result.dataset_drift),
                            "drifted_columns": float(len(result.drifted_columns)),
                            **{SCORE_PREFIX + k: v for k, v in result.scores().items()}})
        report_uri = None
        if result.report_html and Path(result.report_html).is_file():
            mlflow.log_artifact(result.report_html, "drift")
            report_uri = f"{run.info.artifact_uri}/drift/{Path(result.report_html).name}"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "drift_result.json"
            path.write_text(json.dumps(result.model_dump(mode="json"), indent=1))
            mlflow.log_artifact(str(path), "drift")
    return result.model_copy(update={"mlflow_run_id": run.info.run_id, "report_uri": report_uri})
