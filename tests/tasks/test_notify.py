"""Notifications through real Prefect notification blocks to a real loopback HTTP receiver (Prefect test harness),
and the rule that webhook secrets never reach logs, artifacts, MLflow params or tags."""

from __future__ import annotations

import json
import logging
import time
import uuid

import pytest

from canvascraft.settings import get_settings
from tests.http_receiver import http_receiver

DRIFT = {
    "pipeline": "digits-quick",
    "drift_share": 0.75,
    "drift_share_threshold": 0.5,
    "incoming": "s3://b/in",
    "reference_dataset_version": "ref123",
    "drifted_columns": ["brightness", "contrast"],
    "report_html": "/r.html",
}
PUBLISHED = {
    "published": True,
    "model": "canvascraft-digits",
    "version": "4",
    "promoted": True,
    "fid": 12.5,
    "reason": "first version",
    "previous_champion": None,
}


@pytest.fixture(autouse=True)
def _no_notify_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CANVASCRAFT_NOTIFY_BLOCK", "CANVASCRAFT_NOTIFY_SECRET_BLOCK", "CANVASCRAFT_NOTIFY_WEBHOOK_URL"):
        monkeypatch.delenv(var, raising=False)


def test_saved_custom_webhook_block_delivers_drift_alert(prefect_harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from tasks.notify import notify_drift_detected

    name = f"alerts-{uuid.uuid4().hex[:8]}"
    with http_receiver() as (url, received):
        CustomWebhookNotificationBlock(
            name="canvascraft",
            url=url + "/hook/{{token}}",
            secrets={"token": "tok-" + name},
            json_data={"title": "{{subject}}", "message": "{{body}}"},
        ).save(name)
        monkeypatch.setenv("CANVASCRAFT_NOTIFY_BLOCK", f"custom-webhook/{name}")
        assert notify_drift_detected(DRIFT) is True
        request = received.wait_for(1)[0]
    assert request["path"] == f"/hook/tok-{name}"
    payload = json.loads(request["body"])
    assert payload["title"] == "CanvasCraft: drift detected in digits-quick"
    assert "0.750" in payload["message"] and "brightness, contrast" in payload["message"]


def test_secret_block_url_delivers_promotion(prefect_harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.blocks.system import Secret

    from tasks.notify import notify_model_promoted

    name = f"webhook-url-{uuid.uuid4().hex[:8]}"
    with http_receiver() as (url, received):
        Secret(value=f"{url}/from-secret-block").save(name)
        monkeypatch.setenv("CANVASCRAFT_NOTIFY_SECRET_BLOCK", name)
        assert notify_model_promoted("digits-quick", PUBLISHED, "run-1") is True
        request = received.wait_for(1)[0]
    payload = json.loads(request["body"])
    assert request["path"] == "/from-secret-block"
    assert payload["event"] == "model_promoted" and payload["details"]["version"] == "4"
    assert payload["subject"] == "CanvasCraft: canvascraft-digits v4 promoted to @champion"


def test_env_url_delivers_rollback_and_flow_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.notify import notify_flow_failure, notify_rollback

    with http_receiver() as (url, received):
        monkeypatch.setenv("CANVASCRAFT_NOTIFY_WEBHOOK_URL", f"{url}/env")
        assert notify_rollback("canvascraft-digits", {"champion": "2", "replaced": "3"}) is True
        assert notify_flow_failure("train", "brave-fox", "id-1", "boom", "digits-quick") is True
        events = [json.loads(r["body"])["event"] for r in received.wait_for(2)]
    assert events == ["rollback", "flow_failure"]


def test_nothing_configured_or_channel_down_never_raises(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from canvascraft.stack.process import free_port
    from tasks.notify import notify, notify_rollback

    assert notify_rollback("m", {"champion": "1", "replaced": "2"}) is False  # not configured: skipped
    monkeypatch.setenv("CANVASCRAFT_NOTIFY_WEBHOOK_URL", f"http://127.0.0.1:{free_port()}/down")
    with caplog.at_level(logging.WARNING):
        assert notify("flow_failure", "s", "b") is False
    assert "not delivered" in caplog.text
    with pytest.raises(Exception, match="allowed values"):
        notify("weather", "s", "b")


def test_webhook_secret_never_reaches_logs_artifacts_or_mlflow(
    prefect_harness, s3_client, bucket: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd
) -> None:
    """The real train flow with a secret in the webhook URL: a promoted run notifies it, a failed run's webhook
    answers 500 (its error names the URL); the secret is in none of the runs' logs, artifacts, MLflow params/tags."""
    import mlflow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler

    from canvascraft import tracking
    from canvascraft.datasets import seed_dataset
    from flows.train import train
    from tests.spec_helpers import tiny_dcgan_spec

    secret = f"s3cr3t-{uuid.uuid4().hex}"
    seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=60)
    spec = tiny_dcgan_spec(f"secret_{bucket[-6:]}", f"s3://{bucket}/digits", f"secret-{bucket}")
    with http_receiver() as (good_url, received), http_receiver(status=500) as (bad_url, _):
        monkeypatch.setenv("CANVASCRAFT_NOTIFY_WEBHOOK_URL", f"{good_url}/hooks/{secret}")
        with caplog.at_level(logging.DEBUG):
            promoted = train(spec, return_state=True)
            assert promoted.is_completed() and promoted.result().publish.promoted
            assert received.wait_for(1)[0]["path"] == f"/hooks/{secret}"  # the secret was really used
            monkeypatch.setenv("CANVASCRAFT_NOTIFY_WEBHOOK_URL", f"{bad_url}/hooks/{secret}")
            failed = train({**spec, "device": "tpu"}, return_state=True)  # 500 from the webhook: not delivered
            assert failed.is_failed()
    run_ids = [promoted.state_details.flow_run_id, failed.state_details.flow_run_id]

    tracking.configure(get_settings())
    run = mlflow.MlflowClient().get_run(promoted.result().mlflow_run_id)
    APILogHandler().flush()  # run logs reach the API in batches
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 20
        while True:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids)))
            if any("not delivered" in log.message for log in logs) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=run_ids))
        )
    out, err = capfd.readouterr()
    assert "not delivered" in " ".join(log.message for log in logs)
    assert {a.key for a in artifacts} >= {f"secret-{bucket[-6:]}-summary", f"secret-{bucket[-6:]}-evaluation"}
    places = {
        "mlflow params": json.dumps(run.data.params),
        "mlflow tags": json.dumps(run.data.tags),
        "prefect logs": " ".join(log.message for log in logs),
        "prefect artifacts": " ".join(str(a.data) + str(a.description) for a in artifacts),
        "python logs": caplog.text,
        "stdout/stderr": out + err,
    }
    assert {where: secret in text for where, text in places.items()} == dict.fromkeys(places, False)


def test_spec_block_wins_over_settings_and_filters_events(prefect_harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The spec's notifications.block is used instead of the settings' URL; an event it does not list is skipped."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from canvascraft.spec import NotificationsSpec
    from tasks.notify import notify_model_promoted, notify_rollback

    name = f"spec-alerts-{uuid.uuid4().hex[:8]}"
    with http_receiver() as (spec_url, spec_received), http_receiver() as (env_url, env_received):
        CustomWebhookNotificationBlock(
            name="canvascraft", url=spec_url + "/spec", json_data={"title": "{{subject}}"}
        ).save(name)
        monkeypatch.setenv("CANVASCRAFT_NOTIFY_WEBHOOK_URL", env_url + "/env")
        config = NotificationsSpec(block=f"custom-webhook/{name}", events=["model_promoted"])
        assert notify_model_promoted("digits-quick", PUBLISHED, "run-1", config) is True
        assert notify_rollback("canvascraft-digits", {"champion": "2", "replaced": "3"}, config) is False
        assert json.loads(spec_received.wait_for(1)[0]["body"])["title"].endswith("promoted to @champion")
        time.sleep(0.5)
    assert len(spec_received.requests) == 1 and env_received.requests == []


def test_spec_notifications_section_is_validated() -> None:
    from canvascraft.errors import SpecError
    from canvascraft.spec import load_spec

    base = {"name": "n", "data": {"source": "s3://bucket/p"}}
    assert load_spec({**base, "notifications": {"block": "slack-webhook/ml-oncall"}}).notifications.events == [
        "drift_detected",
        "model_promoted",
        "rollback",
        "flow_failure",
    ]
    with pytest.raises(SpecError, match=r"notifications\.events\[0\].*drift_detected.*flow_failure"):
        load_spec({**base, "notifications": {"events": ["weather"]}})
    with pytest.raises(SpecError, match=r"notifications\.block"):
        load_spec({**base, "notifications": {"block": "no-slash"}})


def test_an_applied_automation_takes_over_a_blocks_notifications(
    prefect_harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a block configured, the enabled automation `canvascraft deploy` names for the event delivers it server
    side and this process sends nothing; disabled (or absent), and for a failed run whose deployment no failure
    automation matches (an ad-hoc run), this process sends it through the saved block."""
    from prefect import flow
    from prefect.automations import Automation, DoNothing, EventTrigger
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.client.orchestration import get_client

    from tasks.notify import automation_name, notify_drift_detected, notify_flow_failure

    pipeline, block = f"cover-{uuid.uuid4().hex[:8]}", f"cover-alerts-{uuid.uuid4().hex[:8]}"

    @flow(name=f"cover-{pipeline}")
    def adhoc() -> int:
        return 1

    with get_client(sync_client=True) as client:
        deployed = client.create_deployment(flow_id=client.create_flow_from_name(adhoc.name), name=pipeline)
        deployed_run = client.create_flow_run_from_deployment(deployed)
    adhoc_run = adhoc(return_state=True).state_details.flow_run_id
    with http_receiver() as (url, received):
        CustomWebhookNotificationBlock(name="canvascraft", url=url + "/saved", json_data={"title": "{{subject}}"}).save(
            block
        )
        monkeypatch.setenv("CANVASCRAFT_NOTIFY_BLOCK", f"custom-webhook/{block}")
        drift = Automation(
            name=automation_name("drift_detected", pipeline),
            actions=[DoNothing()],
            trigger=EventTrigger(expect={"canvascraft.drift.detected"}),
        ).create()
        of_deployment = {
            "prefect.resource.role": "deployment",
            "prefect.resource.id": [f"prefect.deployment.{deployed}"],
        }
        failure = Automation(
            name=automation_name("flow_failure", pipeline),
            actions=[DoNothing()],
            trigger=EventTrigger(expect={"prefect.flow-run.Failed"}, match_related=of_deployment),
        )
        failure = failure.create()
        try:
            assert notify_drift_detected({**DRIFT, "pipeline": pipeline}) is False  # the automation's job
            assert notify_flow_failure("cover", "run-a", str(deployed_run.id), "boom", "other-name") is False
            time.sleep(0.5)
            assert received.requests == []
            assert notify_flow_failure("cover", "run-b", str(adhoc_run), "boom", pipeline) is True  # no deployment
            drift.disable()
            assert notify_drift_detected({**DRIFT, "pipeline": pipeline}) is True
            titles = [json.loads(r["body"])["title"] for r in received.wait_for(2)]
        finally:
            drift.delete()
            failure.delete()
    assert titles == ["CanvasCraft: flow cover run run-b failed", f"CanvasCraft: drift detected in {pipeline}"]
