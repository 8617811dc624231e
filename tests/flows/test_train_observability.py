"""The train flow's observability hooks under the Prefect test harness: metrics on a real Pushgateway (stage timings
from the task runs), summary artifacts, failure notification to a real loopback webhook, and an unreachable gateway
that changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from canvascraft.datasets import seed_dataset
from canvascraft.stack.process import free_port
from tests.http_receiver import http_receiver
from tests.observability_helpers import run_gateway, scrape, value
from tests.spec_helpers import tiny_dcgan_spec


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Debian Pushgateway on a free loopback port for this module."""
    yield from run_gateway(tmp_path_factory)


def _spec(bucket: str, name: str) -> dict:
    return {
        "name": name,
        "data": {"source": f"s3://{bucket}/digits", "min_valid_count": 10},
        "brushes": [{"name": "resize", "params": {"size": 8}}, {"name": "normalize"}],
    }


def test_completed_run_pushes_metrics_and_publishes_artifacts(
    prefect_harness, s3_client, bucket: str, gateway: str, session_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real train run with a trainer (2 Tune trials, FID, classifier score, publish) read back from the gateway."""
    import mlflow
    from prefect.artifacts import Artifact

    from flows.train import train

    monkeypatch.setenv("CANVASCRAFT_PUSHGATEWAY_URL", gateway)
    seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=60)
    spec = tiny_dcgan_spec("obs_ok", f"s3://{bucket}/digits", f"obs-{bucket}")
    spec["evaluator"]["classifier_score"] = True  # digits carry labels.csv
    state = train(spec, return_state=True)
    assert state.is_completed()
    result = state.result()

    samples = scrape(gateway)
    group = {"job": "canvascraft_train", "pipeline": "obs_ok"}
    assert value(samples, "canvascraft_images_ingested_total", **group) == 60
    assert value(samples, "canvascraft_images_quarantined_total", **group) == 0
    assert value(samples, "canvascraft_flow_failures_total", **group) == 0
    assert value(samples, "canvascraft_stage_duration_seconds", stage="tune", **group) > 0
    assert value(samples, "canvascraft_run_duration_seconds", **group) > 0
    assert value(samples, "canvascraft_trials_total", status="ok", **group) == 2
    assert value(samples, "canvascraft_fid", **group) == pytest.approx(result.evaluation.score.fid)
    classifier = result.evaluation.score.classifier
    assert value(samples, "canvascraft_classifier_score", **group) == pytest.approx(classifier.mean_top_probability)
    assert value(samples, "canvascraft_classifier_coverage", **group) == classifier.coverage
    assert value(samples, "canvascraft_promotions_total", outcome="promoted", **group) == 1
    assert value(samples, "canvascraft_model_version", **group) == int(result.publish.version)

    mlflow.set_tracking_uri(f"sqlite:///{session_dir / 'home' / 'mlflow.db'}")
    logged = mlflow.get_run(result.mlflow_run_id).data.metrics
    assert logged["classifier_score"] == pytest.approx(classifier.mean_top_probability)
    assert 0.0 < logged["classifier_accuracy"] <= 1.0
    for stage in ("ingest", "preprocess", "features", "training_set", "tune", "evaluate", "publish"):  # task runs
        assert value(samples, "canvascraft_stage_duration_seconds", stage=stage, **group) > 0, stage
    summary = Artifact.get("obs-ok-summary")
    assert summary is not None and result.dataset_version in summary.data and "| tune |" in summary.data
    assert "| publish |" in summary.data and f"v{result.publish.version}" in summary.data
    evaluation = Artifact.get("obs-ok-evaluation")
    assert evaluation is not None and "classifier score" in evaluation.data


def test_failed_run_pushes_failure_and_notifies(prefect_harness, gateway: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.train import train

    monkeypatch.setenv("CANVASCRAFT_PUSHGATEWAY_URL", gateway)
    with http_receiver() as (url, received):
        monkeypatch.setenv("CANVASCRAFT_NOTIFY_WEBHOOK_URL", f"{url}/hooks/flow-failures")
        state = train({"name": "obs_bad", "data": {"source": "s3://bkt/p"}, "device": "tpu"}, return_state=True)
        assert state.is_failed()
        requests = received.wait_for(1)
    assert len(requests) == 1 and requests[0]["path"] == "/hooks/flow-failures"
    payload = json.loads(requests[0]["body"])
    assert payload["event"] == "flow_failure" and "obs_bad" in payload["body"] and "train" in payload["subject"]
    samples = scrape(gateway)
    assert value(samples, "canvascraft_flow_failures_total", job="canvascraft_train", pipeline="obs_bad") == 1


def test_unreachable_gateway_does_not_fail_the_run(
    prefect_harness, s3_client, bucket: str, caplog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port that refuses (bound, never listening): the run completes and the hook says the metrics were dropped."""
    import logging

    from flows.train import train

    port = free_port()
    monkeypatch.setenv("CANVASCRAFT_PUSHGATEWAY_URL", f"127.0.0.1:{port}")
    seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=12)
    with caplog.at_level(logging.WARNING):
        state = train(_spec(bucket, "obs_nogw"), return_state=True)
    assert state.is_completed() and state.result().valid == 12
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"Pushgateway 127.0.0.1:{port} unreachable: metrics of train/obs_nogw dropped; the run goes on" in warnings


def test_real_drift_check_and_rollback_flows_push_and_notify(
    prefect_harness, s3_client, bucket: str, gateway: str, tmp_path: Path, session_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """observe_run as the hook of the real drift_check and rollback flows: their metrics and notifications."""
    import mlflow
    import torch

    from canvascraft.evaluation.scores import FidScore
    from canvascraft.publishing import model_registry as registry
    from canvascraft.settings import get_settings
    from canvascraft.spec import load_spec
    from canvascraft.trainers import build_trainer
    from flows.drift_check import drift_check
    from flows.rollback import rollback
    from tests.drift_helpers import drift_spec, make_champion, seed_digits

    monkeypatch.setenv("CANVASCRAFT_PUSHGATEWAY_URL", gateway)
    monkeypatch.setenv("CANVASCRAFT_FEAST_DATA", str(tmp_path / "feast"))
    seed_digits(s3_client, f"s3://{bucket}/reference", 0, 150)
    seed_digits(s3_client, f"s3://{bucket}/inverted", 150, 250, invert=True)
    pipeline, model = f"obs_drift_{bucket[-6:]}", f"obs-model-{bucket[-6:]}"
    raw = drift_spec(bucket, pipeline, model)
    make_champion(load_spec(raw), get_settings(), s3_client)  # v1 @champion, with its reference table
    with http_receiver() as (url, received):
        monkeypatch.setenv("CANVASCRAFT_NOTIFY_WEBHOOK_URL", url)
        drifted = drift_check(raw, incoming=f"s3://{bucket}/inverted", push_features=False)
        drift_events = [json.loads(r["body"])["event"] for r in received.wait_for(1)]

    # v2 through the real gate, so v1 becomes @previous: the rollback flow then has something to roll back to
    trainer = build_trainer(
        "dcgan",
        {
            "sample_size": 8,
            "channels": 1,
            "latent_dim": 4,
            "g_features": 4,
            "d_features": 4,
            "steps": 1,
            "batch_size": 4,
        },
    )
    trainer.train(None, torch.rand(8, 1, 8, 8) * 2 - 1)
    checkpoint = str(trainer.save_checkpoint(tmp_path / "ckpt"))
    mlflow.set_tracking_uri(f"sqlite:///{session_dir / 'home' / 'mlflow.db'}")
    with mlflow.start_run(experiment_id=mlflow.set_experiment(pipeline).experiment_id) as run:
        pass
    score = FidScore(fid=1.0, n=32, n_real=32, dims=64, weights_sha256="c" * 64, resize="bilinear", reference="r")
    version = registry.log_model_version(model, checkpoint, run.info.run_id, registry.save_score_tags(score))
    registry.gate_and_alias(
        model, version, score, metric="fid", margin=0.0, tag="candidate", lock=registry.lock_for(tmp_path, model)
    )
    assert registry.aliases_of(model, version) == ["candidate", "champion"]

    with http_receiver() as (url, received):
        monkeypatch.setenv("CANVASCRAFT_NOTIFY_WEBHOOK_URL", url)
        rolled = rollback(model)
        rollback_events = [json.loads(r["body"])["event"] for r in received.wait_for(1)]
    assert drifted["dataset_drift"] and drift_events == ["drift_detected"]
    assert rolled == {"champion": "1", "replaced": version} and rollback_events == ["rollback"]
    samples = scrape(gateway)
    drift_group = {"job": "canvascraft_drift_check", "pipeline": pipeline}
    assert value(samples, "canvascraft_drift_share", **drift_group) == pytest.approx(drifted["drift_share"])
    assert value(samples, "canvascraft_drifted_columns", **drift_group) == len(drifted["drifted_columns"])
    assert (
        value(
            samples, "canvascraft_promotions_total", job="canvascraft_rollback", pipeline=model, outcome="rolled_back"
        )
        == 1
    )
    assert value(samples, "canvascraft_model_version", job="canvascraft_rollback", pipeline=model) == 1
