"""The markdown run summary of a train run (pure rendering)."""

from __future__ import annotations

from canvascraft.reports import run_summary_markdown

RESULT = {
    "pipeline": "digits-quick",
    "dataset_version": "dv42",
    "valid": 1797,
    "quarantined": 2,
    "images": 1797,
    "features": {"rows_materialized": 3594},
    "training_set": {"kept": 1790},
    "mlflow_run_id": "abc123",
    "search": {"trials": [{}, {}], "best_metrics": {"loss": 0.21, "images_per_sec": 420.0}},
    "evaluation": {"score": {"fid": 33.3333, "kid_mean": 0.01, "n": 200, "dims": 64, "resize": "bilinear"}},
    "publish": {
        "published": True,
        "model": "canvascraft-digits",
        "version": "5",
        "aliases": ["candidate", "champion"],
        "promoted": True,
        "reason": "first version",
    },
}


def test_summary_links_run_version_and_drift_report() -> None:
    links = {
        "mlflow_run": "http://mlflow:5000/#/experiments/1/runs/abc123",
        "model_version": "http://mlflow:5000/#/models/canvascraft-digits/versions/5",
        "drift_report": "http://mlflow:5000/get-artifact?path=drift.html",
    }
    text = run_summary_markdown(RESULT, links, {"ingest": 1.25, "tune": 60.0})
    assert "[abc123](http://mlflow:5000/#/experiments/1/runs/abc123)" in text
    assert "[canvascraft-digits v5](http://mlflow:5000/#/models/canvascraft-digits/versions/5)" in text
    assert "@champion" in text and "FID 33.333" in text and "| tune | 60.0 |" in text
    assert "[latest drift check](http://mlflow:5000/get-artifact?path=drift.html)" in text


def test_summary_without_server_or_trainer_still_renders() -> None:
    minimal = {k: RESULT[k] for k in ("pipeline", "dataset_version", "valid", "quarantined", "images")}
    text = run_summary_markdown(minimal, {"mlflow_run": None, "model_version": None, "drift_report": None})
    assert "`dv42`" in text and "no drift check of this pipeline yet" in text and "Registered" not in text
