"""One drift check end to end in the core: incoming prefix -> new images -> palettes (and embeddings) -> compare."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from canvascraft.artifact_root import artifact_root
from canvascraft.drift.detect import JOIN_KEY, DriftResult, compare_features
from canvascraft.drift.embeddings import (
    EmbeddingsDriftResult,
    compare_embeddings,
    image_embeddings,
    sample_ids,
)
from canvascraft.drift.incoming import ingest_incoming, palette_frame
from canvascraft.drift.reference import (
    ReferenceLocation,
    locate_reference,
    palette_set_of,
)
from canvascraft.errors import DriftError
from canvascraft.ingest import IngestReport
from canvascraft.ingest.cache import ObjectCache
from canvascraft.ingest.snapshots import fetch_objects, load_manifest
from canvascraft.settings import Settings
from canvascraft.spec import EmbeddingsDriftSpec, PipelineSpec
from canvascraft.storage import make_s3_client

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
        raise DriftError(
            f"spec {spec.name!r}: drift.incoming is not set and no incoming prefix was given; "
            "set drift.incoming: s3://BUCKET/PREFIX in the spec or pass --incoming s3://..."
        )
    if not uri.startswith("s3://"):
        raise DriftError(f"incoming prefix {uri!r} is not an s3://bucket/prefix URI")
    return uri


def report_path(settings: Settings, spec: PipelineSpec, reference_version: str, incoming_version: str) -> Path:
    """``<home>/reports/drift/<pipeline>/<reference dataset version>-vs-<incoming dataset version>.html``."""
    return settings.home / "reports" / "drift" / spec.name / f"{reference_version}-vs-{incoming_version}.html"


def check_drift(spec: PipelineSpec, settings: Settings, incoming: str | None = None) -> DriftCheck:
    """Compare the incoming images that are new to the champion with its reference; write the HTML report(s).

    Only images whose sha256 is not in the champion's training snapshot are compared: once a retrain on them is
    champion, the same prefix is calm ("no new images"). An incoming dataset version that a train run already
    answered (its MLflow run carries ``tracking.RETRAIN_OF_TAG``) is not raised again, promoted or not.
    """
    from canvascraft import tracking

    uri = incoming_uri(spec, incoming)
    reference = locate_reference(spec, settings)
    report, paths = ingest_incoming(spec, settings, uri)
    reference_frame = pd.read_parquet(reference.table)
    known = set(reference_frame[JOIN_KEY].astype(str))
    new_ids = [i for i in paths if i not in known]
    lineage: dict[str, Any] = {
        "pipeline": spec.name,
        "reference_dataset_version": reference.dataset_version,
        "reference_model": reference.model,
        "reference_model_version": reference.version,
        "reference_table": reference.table,
        "incoming": uri,
        "incoming_dataset_version": report.dataset_version,
        "incoming_images": len(paths),
        "new_images": len(new_ids),
        "raise_on": spec.drift.raise_on,
        "drift_share_threshold": spec.drift.drift_share,
        "method": spec.drift.method,
        "threshold": spec.drift.threshold,
        "reference_rows": len(reference_frame),
    }
    if not new_ids:
        return DriftCheck(
            result=DriftResult(status="no new images", **lineage), incoming_report=report, reference=reference
        )
    answered = tracking.retrains_of(settings, spec.name, report.dataset_version)
    if answered:
        return DriftCheck(
            result=DriftResult(status="already retrained", retrained_by=answered[0], **lineage),
            incoming_report=report,
            reference=reference,
        )
    current = palette_frame(palette_set_of(spec), {i: paths[i] for i in new_ids})
    html = report_path(settings, spec, reference.dataset_version, report.dataset_version)
    result = compare_features(reference_frame, current, spec.drift, html)
    embedded = None
    if (emb := spec.drift.embeddings_spec) is not None:
        embedded = embeddings_check(
            spec,
            settings,
            emb,
            reference,
            reference_frame[JOIN_KEY].astype(str).tolist(),
            new_ids,
            paths,
            html.with_name(html.stem + "-embeddings.html"),
        )
    publish_reports(settings, [html] + ([Path(embedded.report_html)] if embedded and embedded.report_html else []))
    result = result.model_copy(update={**lineage, "embeddings": embedded, "current_rows": len(current)})
    result = result.model_copy(update={"status": "drift" if result.event_due else "no drift"})
    return DriftCheck(result=result, incoming_report=report, reference=reference)


def publish_reports(settings: Settings, reports: list[Path]) -> None:
    """Copy drift reports to the artifact root (``reports/drift/<pipeline>/``); the home keeps its copy."""
    artifacts = artifact_root(settings)
    for path in reports:
        if path.is_file() and not artifacts.is_local:
            artifacts.put_bytes(f"reports/drift/{path.parent.name}/{path.name}", path.read_bytes())


def embeddings_check(
    spec: PipelineSpec,
    settings: Settings,
    emb: EmbeddingsDriftSpec,
    reference: ReferenceLocation,
    reference_ids: list[str],
    new_ids: list[str],
    incoming_paths: dict[str, Path],
    html: Path,
) -> EmbeddingsDriftResult:
    """Inception features of (a seeded sample of) the reference and the new images, compared by Evidently.

    The reference images come from the champion's snapshot manifest in the artifact root; any this worker's
    object cache lacks are fetched from their source and checked against their sha256.
    """
    ref_ids = sample_ids(reference_ids, emb.max_images, spec.seed)
    cur_ids = sample_ids(new_ids, emb.max_images, spec.seed)
    wanted = set(ref_ids)
    manifest = load_manifest(reference.dataset_version, artifact_root(settings))
    entries = list({e.sha256: e for e in manifest.entries if e.sha256 in wanted}.values())
    ref_paths = fetch_objects(
        entries, ObjectCache(settings.home / "cache"), make_s3_client(settings), max_workers=settings.s3_max_concurrency
    )
    paths = {**ref_paths, **incoming_paths}
    size = spec.features.image_size
    ref_features = image_embeddings(ref_ids, paths, emb, size, settings, fallback_weights=spec.evaluator.weights)
    cur_features = image_embeddings(cur_ids, paths, emb, size, settings, fallback_weights=spec.evaluator.weights)
    return compare_embeddings(ref_features, cur_features, emb, html)


def log_drift_run(
    settings: Settings, spec: PipelineSpec, result: DriftResult, tags: dict[str, str] | None = None
) -> DriftResult:
    """An MLflow run in the pipeline's experiment: drift share, per-feature scores, the HTML report as artifact."""
    import mlflow

    from canvascraft import tracking

    tracking.ensure_experiment(settings, spec.name)
    run_tags = {"canvascraft.kind": "drift", "pipeline": spec.name, **(tags or {})}
    with mlflow.start_run(run_name=f"drift-{result.incoming_dataset_version or 'incoming'}", tags=run_tags) as run:
        mlflow.log_params(
            {
                "reference_dataset_version": result.reference_dataset_version,
                "incoming_dataset_version": result.incoming_dataset_version,
                "incoming": result.incoming,
                "method": result.method or "evidently-default",
                "threshold": result.threshold,
                "drift_share_threshold": result.drift_share_threshold,
                "reference_model": f"{result.reference_model}/{result.reference_model_version}",
            }
        )
        mlflow.set_tags({"status": result.status, "event_due": str(result.event_due)})
        embedded = result.embeddings
        mlflow.log_metrics(
            {
                "drift_share": result.drift_share,
                "dataset_drift": float(result.dataset_drift),
                "drifted_columns": float(len(result.drifted_columns)),
                "incoming_images": float(result.incoming_images),
                "new_images": float(result.new_images),
                **(
                    {
                        "embeddings_drift_score": embedded.score,
                        "embeddings_drift": float(embedded.drifted),
                        "embeddings_seconds": embedded.seconds,
                    }
                    if embedded
                    else {}
                ),
                **{SCORE_PREFIX + k: v for k, v in result.scores().items()},
            }
        )
        if embedded:
            mlflow.log_params(
                {
                    "embeddings_method": embedded.method,
                    "embeddings_dims": embedded.dims,
                    "embeddings_threshold": embedded.threshold,
                }
            )
        report_uri = None
        if result.report_html and Path(result.report_html).is_file():
            mlflow.log_artifact(result.report_html, "drift")
            report_uri = f"{run.info.artifact_uri}/drift/{Path(result.report_html).name}"
        if embedded and embedded.report_html and Path(embedded.report_html).is_file():
            mlflow.log_artifact(embedded.report_html, "drift")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "drift_result.json"
            path.write_text(json.dumps(result.model_dump(mode="json"), indent=1))
            mlflow.log_artifact(str(path), "drift")
    return result.model_copy(update={"mlflow_run_id": run.info.run_id, "report_uri": report_uri})
