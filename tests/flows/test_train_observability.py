"""The train flow's observability hooks under the Prefect test harness: metrics on a real Pushgateway, progress and
summary artifacts, failure notification to a real loopback webhook, and an unreachable gateway that changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from canvascraft.datasets import seed_dataset
from canvascraft.stack.process import free_port
from tests.http_receiver import http_receiver
from tests.observability_helpers import run_gateway, scrape, value


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Debian Pushgateway on a free loopback port for this module."""
    yield from run_gateway(tmp_path_factory)


def _spec(bucket: str, name: str) -> dict:
    return {"name": name, "data": {"source": f"s3://{bucket}/digits", "min_valid_count": 10},
            "brushes": [{"name": "resize", "params": {"size": 8}}, {"name": "normalize"}]}


def test_completed_run_pushes_metrics_and_publishes_artifacts(prefect_harness, s3_client, bucket: str, gateway: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.artifacts import Artifact

    from flows.train import train

    monkeypatch.setenv("CANVASCRAFT_PUSHGATEWAY_URL", gateway)
    seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=24)
    state = train(_spec(bucket, "obs_ok"), return_state=True)
    assert state.is_completed()

    samples = scrape(gateway)
    group = {"job": "canvascraft_train", "pipeline": "obs_ok"}
    assert value(samples, "canvascraft_images_ingested_total", **group) == 24
    assert value(samples, "canvascraft_images_quarantined_total", **group) == 0
    assert value(samples, "canvascraft_flow_failures_total", **group) == 0
    assert value(samples, "canvascraft_stage_duration_seconds", stage="ingest", **group) > 0
    assert value(samples, "canvascraft_run_duration_seconds", **group) > 0
    progress = Artifact.get("obs-ok-progress")
    assert progress is not None and progress.type == "progress" and float(progress.data) == 100.0
    summary = Artifact.get("obs-ok-summary")
    assert summary is not None and state.result()["dataset_version"] in summary.data and "| ingest |" in summary.data


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


def test_unreachable_gateway_does_not_fail_the_run(prefect_harness, s3_client, bucket: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.train import train

    monkeypatch.setenv("CANVASCRAFT_PUSHGATEWAY_URL", f"127.0.0.1:{free_port()}")  # nothing listens there
    seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=12)
    state = train(_spec(bucket, "obs_nogw"), return_state=True)
    assert state.is_completed() and state.result()["valid"] == 12


def test_hook_on_other_flows_pushes_and_notifies_drift_and_rollback(prefect_harness, gateway: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """observe_run as drift_check's and rollback's hook: flow-specific metrics and notifications."""
    from prefect import flow

    from tasks.observability import observe_run

    @flow(name="drift_check", on_completion=[observe_run])
    def fake_drift_check(spec: dict) -> dict:
        return {"pipeline": spec["name"], "status": "drift", "event_due": True, "dataset_drift": True,
                "drift_share": 0.6, "drift_share_threshold": 0.5,
                "drifted_columns": ["brightness", "entropy", "contrast"], "incoming": "s3://b/in"}

    @flow(name="rollback", on_completion=[observe_run])
    def fake_rollback(registered_model: str) -> dict:
        return {"champion": "2", "replaced": "3"}

    monkeypatch.setenv("CANVASCRAFT_PUSHGATEWAY_URL", gateway)
    with http_receiver() as (url, received):
        monkeypatch.setenv("CANVASCRAFT_NOTIFY_WEBHOOK_URL", url)
        fake_drift_check({"name": "obs_drift"})
        fake_rollback("canvascraft-obs")
        events = [json.loads(r["body"])["event"] for r in received.wait_for(2)]
    assert events == ["drift_detected", "rollback"]
    samples = scrape(gateway)
    assert value(samples, "canvascraft_drift_share", job="canvascraft_drift_check", pipeline="obs_drift") == 0.6
    assert value(samples, "canvascraft_drifted_columns", job="canvascraft_drift_check", pipeline="obs_drift") == 3
    assert value(samples, "canvascraft_promotions_total", job="canvascraft_rollback", pipeline="canvascraft-obs",
                 outcome="rolled_back") == 1
