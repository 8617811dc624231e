"""MLflow tracking helpers: the parent run of a flow run, params of the resolved spec, artifacts."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
import yaml
from mlflow.entities import Metric, Param, RunTag

from canvascraft.settings import Settings
from canvascraft.spec import PipelineSpec


def configure(settings: Settings) -> str:
    """Point MLflow at the configured tracking URI and return it (and keep MLflow's console output to what matters).

    MLflow prints "View run/experiment at <tracking URI>" after every run (the flow prints its own links, and a
    URI with credentials must never be printed) and draws a progress bar per artifact download; both are off
    unless the user sets the variables. The registry's "waiting for model version" INFO line is dropped too.
    """
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow.store.model_registry.abstract_store").setLevel(logging.WARNING)
    uri = settings.resolved_mlflow_tracking_uri
    mlflow.set_tracking_uri(uri)
    return uri


def ensure_experiment(settings: Settings, name: str) -> None:
    """Use experiment ``name``; with a sqlite store, create it with artifacts under the home (not the cwd)."""
    uri = configure(settings)
    if uri.startswith("sqlite:") and mlflow.get_experiment_by_name(name) is None:
        location = settings.home / "mlflow-artifacts" / name
        location.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(mlflow.exceptions.MlflowException):  # created concurrently by another run
            mlflow.create_experiment(name, artifact_location=location.as_uri())
    mlflow.set_experiment(name)


def start_parent_run(settings: Settings, spec: PipelineSpec, dataset_version: str, tags: dict[str, str]) -> str:
    """Create the run that every trial nests under; log the resolved spec and the dataset version; return its id."""
    ensure_experiment(settings, spec.name)
    with mlflow.start_run(run_name=f"{spec.name}-{dataset_version}", tags=tags) as run:
        mlflow.log_params(
            {
                "dataset_version": dataset_version,
                "spec_hash": spec.spec_hash(),
                "trainer": spec.trainer.name if spec.trainer else "none",
                "seed": spec.seed,
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "pipeline_spec.yaml"
            path.write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
            mlflow.log_artifact(str(path))
        return run.info.run_id


RETRAIN_OF_TAG = "canvascraft.retrain_of"  # on a train run's parent: the incoming dataset version it retrains on


def retrains_of(settings: Settings, pipeline: str, incoming_dataset_version: str) -> list[dict[str, Any]]:
    """Train runs of ``pipeline`` that retrained on ``incoming_dataset_version`` (newest first): run id, status."""
    configure(settings)
    experiment = mlflow.get_experiment_by_name(pipeline)
    if experiment is None:
        return []
    runs = mlflow.MlflowClient().search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{RETRAIN_OF_TAG}` = '{incoming_dataset_version}'",
        order_by=["attributes.start_time DESC"],
        max_results=10,
    )
    return [
        {
            "run_id": r.info.run_id,
            "status": r.info.status,
            "registered_version": r.data.tags.get("registered_version"),
            "promoted": r.data.tags.get("promoted"),
        }
        for r in runs
    ]


def log_to_run(
    run_id: str,
    *,
    metrics: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    artifacts: list[Path] | None = None,
    artifact_path: str | None = None,
) -> None:
    """Add metrics/params/tags/artifacts to an existing run without making it the active run."""
    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    # one log_batch request for all metrics, params and tags (MLflow's REST API takes up to 1,000 metrics,
    # 100 params and 100 tags per call): a remote tracking server sees one round trip, not one per value
    client.log_batch(
        run_id,
        metrics=[Metric(key, float(value), now, 0) for key, value in (metrics or {}).items()],
        params=[
            Param(key, str(value) if isinstance(value, (str, int, float)) else json.dumps(value))
            for key, value in (params or {}).items()
        ],
        tags=[RunTag(key, str(value)) for key, value in (tags or {}).items()],
    )
    for path in artifacts or []:
        client.log_artifact(run_id, str(path), artifact_path)


def finish_run(run_id: str, status: str = "FINISHED") -> None:
    """Terminate a run (FINISHED, FAILED or KILLED)."""
    mlflow.MlflowClient().set_terminated(run_id, status)
