"""After a search: a sample grid per trial in its nested MLflow run, and a table of trials for the UI."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow

from canvascraft.sampling import save_grid
from canvascraft.trainers import load_trainer
from canvascraft.tuning.search import SearchResult, TrialSummary


def trial_runs(parent_run_id: str) -> dict[str, str]:
    """``{trial_id: mlflow run id}`` of the nested runs the MLflowLoggerCallback created under the parent."""
    runs = mlflow.search_runs(
        search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", output_format="list"
    )
    found = {}
    for run in runs:
        # "<trainable>_<trial id>": train_trial_8a5a8_00000, or train_trial_ddp_8a5a8_00000 for a multi-worker trial;
        # Tune's trial id is the last two parts ("8a5a8_00000")
        name = run.data.tags.get("trial_name", "")
        found["_".join(name.rsplit("_", 2)[-2:])] = run.info.run_id
    return found


def log_trial_samples(result: SearchResult, parent_run_id: str, n: int = 16, seed: int = 0) -> dict[str, str]:
    """Sample ``n`` images from every trial's last checkpoint and log the grid PNG to its nested run."""
    runs = trial_runs(parent_run_id)
    logged = {}
    client = mlflow.MlflowClient()
    for trial in result.trials:
        run_id = runs.get(trial.trial_id)
        if run_id is None or trial.checkpoint is None:
            continue
        images = load_trainer(trial.checkpoint, device="cpu").sample(n, seed)
        with tempfile.TemporaryDirectory() as tmp:
            grid = save_grid(images, Path(tmp) / "samples.png")
            client.log_artifact(run_id, str(grid))
        logged[trial.trial_id] = run_id
    return logged


def trials_table(trials: list[TrialSummary], metric: str) -> list[dict[str, Any]]:
    """One row per trial: id, hyper-parameters, final metric, images/s, steps, status."""
    rows = []
    for trial in trials:
        rows.append(
            {
                "trial": trial.trial_id,
                **{f"hp.{k}": v for k, v in (trial.config.get("hp") or {}).items()},
                metric: trial.metrics.get(metric),
                "images_per_sec": round(float(trial.metrics.get("images_per_sec", 0.0)), 1),
                "steps": trial.metrics.get("step"),
                "resumed_from": trial.metrics.get("resumed_from"),
                "status": "error" if trial.error else "ok",
            }
        )
    return rows
