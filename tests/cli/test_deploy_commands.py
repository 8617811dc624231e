"""`canvascraft deploy` against a real `prefect server start`: applied twice, read back through the client (one work
pool, one of each deployment and automation, notification actions on the right block), then CanvasCraft events and
a failed deployment run delivered by the server's automations to a real loopback webhook. Nothing is mocked."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.http_receiver import Received, http_receiver

# Its own pytest process with the other real-server tests (see Makefile `test`).
pytestmark = [pytest.mark.prefect_server]

PROJECT = Path(__file__).resolve().parents[2]
PIPELINES = {"digits-quick": "canvascraft-digits", "fashion-gpu": "canvascraft-fashion"}
EVENTS = ("drift-detected", "model-promoted", "flow-failure")


@dataclass
class Deployed:
    """The server, the block the automations must name, the two deploy outputs and what the webhook received."""

    api: str
    block: str
    block_id: str
    outputs: list[str]
    received: Received


def run_deploy(api: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m cli.main deploy ARGS` as a user runs it, from the project, against ``api``."""
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "deploy", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # the caller judges the exit


@pytest.fixture(scope="module")
def deployed(prefect_api_server: str, tmp_path_factory) -> Iterator[Deployed]:
    """A CustomWebhookNotificationBlock posting to a loopback receiver, then `canvascraft deploy` twice with it."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tmp_path_factory.mktemp("deploy-cli-home")
    name = f"alerts-{uuid.uuid4().hex[:8]}"
    with http_receiver() as (url, received), temporary_settings({PREFECT_API_URL: prefect_api_server}):
        block = CustomWebhookNotificationBlock(
            name="canvascraft",
            url=url + "/hook/{{token}}",
            secrets={"token": "tok-" + name},
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
        )
        block_id = str(block.save(name))
        outputs = []
        for _ in range(2):
            done = run_deploy(prefect_api_server, home, "--notify-block", f"custom-webhook/{name}")
            assert done.returncode == 0, done.stdout + done.stderr
            outputs.append(done.stdout)
        yield Deployed(prefect_api_server, f"custom-webhook/{name}", block_id, outputs, received)


def test_deploy_twice_leaves_one_of_each(deployed: Deployed) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    declared = yaml.safe_load((PROJECT / "prefect.yaml").read_text())["deployments"]
    flow_of = {
        "flows/train.py:train": "train",
        "flows/drift_check.py:drift_check": "drift_check",
        "flows/rollback.py:rollback": "rollback",
    }
    assert "work pool gpu-pool (process) created" in deployed.outputs[0]
    assert "work pool gpu-pool (process) updated" in deployed.outputs[1]
    assert "automation canvascraft-notify-drift-detected-digits-quick updated" in deployed.outputs[1]
    with temporary_settings({PREFECT_API_URL: deployed.api}), get_client(sync_client=True) as client:
        pool = client.read_work_pool("gpu-pool")
        assert pool.type == "process"
        assert pool.base_job_template == json.loads((PROJECT / "deployments/work-pools/process.json").read_text())
        assert len(client.read_deployments()) == len(declared)
        ids = {}
        for item in declared:
            full_name = f"{flow_of[item['entrypoint']]}/{item['name']}"
            deployment = client.read_deployment_by_name(full_name)
            ids[full_name] = str(deployment.id)
            assert deployment.pull_steps == yaml.safe_load((PROJECT / "prefect.yaml").read_text())["pull"]
            assert len(deployment.schedules) == len(item.get("schedules", [])), full_name
            runs_it = [
                a.name
                for a in client.read_resource_related_automations(f"prefect.deployment.{deployment.id}")
                if any(getattr(action, "deployment_id", None) == deployment.id for action in a.actions)
            ]
            assert runs_it == [t["name"] for t in item.get("triggers", [])], full_name  # its triggers, once
        train = client.read_deployment_by_name("train/fashion-gpu")
        assert train.job_variables["gpu"] == 1 and train.global_concurrency_limit.limit == 1
        assert train.concurrency_options.collision_strategy.value == "CANCEL_NEW"
        automations = client.read_automations()
    counts = Counter(a.name for a in automations)
    assert max(counts.values()) == 1, counts
    notify = {f"canvascraft-notify-{event}-{p}" for p in PIPELINES for event in EVENTS}
    notify |= {f"canvascraft-notify-rollback-{model}" for model in PIPELINES.values()}
    assert notify | {"canvascraft-cancel-stuck-retrain", "canvascraft-crash-zombie-runs"} <= set(counts)
    by_name = {a.name: a for a in automations}
    for name in notify:
        (action,) = by_name[name].actions
        assert action.type == "send-notification" and str(action.block_document_id) == deployed.block_id, name
        assert "{{" in action.body and "${" not in action.body + action.subject, name  # Jinja kept, ours filled
    failure = by_name["canvascraft-notify-flow-failure-digits-quick"].trigger.match_related
    assert set(failure.root["prefect.resource.id"]) == {
        f"prefect.deployment.{ids[n]}" for n in ("train/digits-quick", "drift_check/digits-quick", "rollback/digits")
    }


def emit(
    api: str, event: str, resource: dict[str, str], payload: dict[str, Any], related: list[dict[str, str]]
) -> None:
    """Send one event to the server's events endpoint (as emit_event from a run does)."""
    from prefect.events import Event
    from prefect.events.clients import PrefectEventsClient

    async def send() -> None:
        async with PrefectEventsClient(api_url=api) as events:
            await events.emit(Event(event=event, resource=resource, payload=payload, related=related))

    asyncio.run(send())


def test_events_and_a_failed_run_reach_the_webhook_through_automations(deployed: Deployed) -> None:
    """Prefect evaluates the automations within seconds here, so the real delivery is tested (60 s budget)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Failed

    deployed.received.requests.clear()
    with temporary_settings({PREFECT_API_URL: deployed.api}), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("train/digits-quick")
        run = client.create_flow_run_from_deployment(deployment.id, parameters={"spec": "pipelines/digits-quick.yaml"})
        in_run = [
            {
                "prefect.resource.id": f"prefect.flow-run.{run.id}",
                "prefect.resource.role": "flow-run",
                "prefect.resource.name": run.name,
            }
        ]
        pipeline = {
            "prefect.resource.id": "canvascraft.pipeline.digits-quick",
            "prefect.resource.name": "digits-quick",
            "canvascraft.dataset_version": "ref123",
        }
        emit(
            deployed.api,
            "canvascraft.drift.detected",
            pipeline,
            {
                "drift_share": 0.75,
                "drift_share_threshold": 0.5,
                "drifted_columns": ["brightness", "contrast"],
                "incoming": "s3://canvascraft/incoming/digits",
                "new_images": 400,
                "incoming_dataset_version": "inc456",
                "report": "mlflow-artifacts:/1/r/drift.html",
                "mlflow_run_id": "run-9",
                "reference_model": "m",
                "reference_model_version": "3",
            },
            in_run,
        )
        model = {"prefect.resource.id": "canvascraft.pipeline.digits-quick", "canvascraft.model": "canvascraft-digits"}
        verdict = {
            "version": "7",
            "reason": "candidate beats champion",
            "summary": "0.84 vs 0.80",
            "fid": 12.5,
            "metric": "classifier_score",
            "basis": "rescored",
            "champion_version": "6",
            "dataset_version": "d1",
        }
        emit(
            deployed.api,
            "canvascraft.retrain.completed",
            {**model, "canvascraft.promoted": "false"},
            {**verdict, "version": "8"},
            in_run,
        )  # rejected: no notification
        emit(deployed.api, "canvascraft.retrain.completed", {**model, "canvascraft.promoted": "true"}, verdict, in_run)
        rolled = {
            "prefect.resource.id": "canvascraft.model.canvascraft-digits",
            "prefect.resource.name": "canvascraft-digits",
        }
        emit(deployed.api, "canvascraft.model.rolled-back", rolled, {"champion": "6", "replaced": "7"}, in_run)
        client.set_flow_run_state(run.id, Failed(message="CUDA out of memory"), force=True)
        assert client.read_flow_run(run.id).state.type == StateType.FAILED
        began = time.monotonic()
        requests = deployed.received.wait_for(4, timeout=60)
        print(
            f"4 notifications delivered by the server's automations {time.monotonic() - began:.1f} s after the "
            "last event"
        )
        time.sleep(5)  # a fifth (the rejected verdict) would come now
    bodies = {json.loads(r["body"])["subject"]: json.loads(r["body"])["body"] for r in deployed.received.requests}
    assert len(deployed.received.requests) == 4, bodies
    assert {r["path"] for r in requests} == {f"/hook/tok-{deployed.block.split('/')[1]}"}
    drift = bodies["CanvasCraft: drift detected in digits-quick"]
    assert "Drift share 0.75 (threshold 0.5)" in drift and "brightness, contrast" in drift and "400 new" in drift
    assert str(run.id) in drift  # the run link (the server has no UI URL configured here: the run id)
    promoted = bodies["CanvasCraft: canvascraft-digits v7 promoted to @champion"]
    assert "FID 12.5" in promoted and "previous champion v6" in promoted and "candidate beats champion" in promoted
    assert (
        "@champion of canvascraft-digits is now v6 (was v7)"
        in bodies["CanvasCraft: canvascraft-digits rolled back to v6"]
    )
    failed = bodies[f"CanvasCraft: flow train run {run.name} Failed"]
    assert "train/digits-quick (pipeline digits-quick) ended Failed: CUDA out of memory" in failed


def test_deploy_names_a_missing_or_wrong_block(deployed: Deployed) -> None:
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from typer.testing import CliRunner

    from cli.main import app

    with temporary_settings({PREFECT_API_URL: deployed.api}):
        Secret(value="not a webhook").save("not-a-notifier", overwrite=True)
    runner = CliRunner()
    env = {"PREFECT_API_URL": deployed.api}  # restored after each invoke
    wrong = runner.invoke(app, ["deploy", "--notify-block", "secret/not-a-notifier"], env=env)
    missing = runner.invoke(app, ["deploy", "--notify-block", "slack-webhook/nobody"], env=env)
    assert wrong.exit_code == 1 and "'secret' is not a notification block type" in wrong.output
    assert "allowed types: custom-webhook" in wrong.output and "slack-webhook" in wrong.output
    assert missing.exit_code == 1
    assert "'slack-webhook/nobody' (for digits-quick, fashion-gpu) is not saved" in missing.output
    assert "work pool" not in wrong.output + missing.output  # checked before anything was applied
