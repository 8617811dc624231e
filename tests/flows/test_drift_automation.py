"""Drift -> retrain on real loopback services: `prefect server start`, a process worker on gpu-pool, the
deployments of prefect.yaml applied by `canvascraft deploy`, drift_check runs, and the train run the automation
starts (the server, deploy and worker are the session fixture of tests/flows/conftest.py). Nothing is mocked; a
few minutes on 2 busy cores."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from canvascraft.settings import get_settings
from canvascraft.spec import load_spec
from tests.drift_helpers import drift_events, seed_digits
from tests.prefect_server_helpers import flow_runs

# Runs in its own pytest process (see Makefile `test`): it talks to a real Prefect server, the rest of the
# suite to the session's test harness, and one process should not switch between the two APIs.
pytestmark = [pytest.mark.e2e, pytest.mark.prefect_server]

PROJECT = Path(__file__).resolve().parents[2]
PIPELINE = "digits-quick"  # the train deployment train/digits-quick retrains on drift of this pipeline
RESOURCE = f"canvascraft.pipeline.{PIPELINE}"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def test_deployments_from_prefect_yaml(prefect_api: str) -> None:
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    declared = yaml.safe_load((PROJECT / "prefect.yaml").read_text())["deployments"]
    entry_flows = {
        "flows/train.py:train": "train",
        "flows/drift_check.py:drift_check": "drift_check",
        "flows/rollback.py:rollback": "rollback",
    }
    with temporary_settings({PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as client:
        for item in declared:
            deployment = client.read_deployment_by_name(f"{entry_flows[item['entrypoint']]}/{item['name']}")
            assert deployment.work_pool_name == "gpu-pool"
            # the Run form explains itself: every parameter of every deployment carries a description
            properties = deployment.parameter_openapi_schema["properties"]
            assert properties and all(len(p.get("description") or "") > 30 for p in properties.values()), properties
        train_form = client.read_deployment_by_name("train/digits-quick").parameter_openapi_schema["properties"]
        assert "drift.incoming" in train_form["extra_sources"]["description"]
        assert "recorded on the MLflow run" in train_form["incoming_dataset_version"]["description"]
        train = client.read_deployment_by_name("train/fashion-gpu")
        assert train.job_variables["gpu"] == 1 and train.global_concurrency_limit.limit == 1
        assert train.concurrency_options.collision_strategy.value == "CANCEL_NEW"
        drift = client.read_deployment_by_name("drift_check/digits-quick")
        assert [s.schedule.cron for s in drift.schedules] == ["0 * * * *"]
        names = {a["name"]: a for a in client.request("POST", "/automations/filter", json={}).json()}
        assert {
            "retrain-digits-quick-on-drift",
            "retrain-fashion-gpu-on-drift",
            "canvascraft-cancel-stuck-retrain",
        } <= set(names)
        assert names["retrain-digits-quick-on-drift"]["trigger"]["within"] == 900.0


def retrain_events(incoming_dataset_version: str, wait: float) -> list:
    """``canvascraft.retrain.completed`` events of the digits-quick pipeline for one incoming dataset version."""
    from prefect import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    deadline = time.monotonic() + wait
    while True:
        with get_client(sync_client=True) as client:
            page = client.read_events(
                EventFilter(
                    event=EventNameFilter(name=["canvascraft.retrain.completed"]),
                    resource=EventResourceFilter(id=[RESOURCE]),
                ),
                limit=50,
            )
        found = [e for e in page.events if e.payload.get("incoming_dataset_version") == incoming_dataset_version]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(1)


def wait_terminal(client, deployment_name: str, count: int, timeout: float) -> list:
    """Flow runs of a deployment once ``count`` of them exist and all are terminal (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    runs = flow_runs(client, deployment_name)
    while (len(runs) < count or any(r.state.type.value not in TERMINAL for r in runs)) and time.monotonic() < deadline:
        time.sleep(3)
        runs = flow_runs(client, deployment_name)
    return runs


def test_the_retraining_loop_closes(prefect_api: str, s3_client) -> None:
    """champion v1 -> inverted digits land -> drift_check deployment -> automation -> retrain (real tiny DDPM) ->
    like-for-like verdict -> a second check of the same prefix emits nothing and starts nothing. Everything is
    the real deployment of prefect.yaml (pipelines/digits-quick.yaml) on the worker, as a user runs it; only v1 is
    trained with fewer steps (a run parameter) to keep the suite's time."""
    from mlflow import MlflowClient
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.events import emit_event
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from canvascraft import tracking
    from canvascraft.datasets import seed_dataset
    from flows.drift_check import drift_check

    began = time.monotonic()
    spec = load_spec(PROJECT / "pipelines" / "digits-quick.yaml")
    settings = get_settings()
    model = spec.publish.registered_model
    incoming = spec.drift.incoming
    s3_client.create_bucket(Bucket="canvascraft")
    seed_dataset("digits", s3_client, spec.data.source)

    with temporary_settings({PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as client:
        # champion v1 through the same deployment with a shorter schedule (a parameter, as `prefect deployment run
        # --param` gives it): the loop under test is the retrain, which runs the deployment's own full spec
        first_spec = yaml.safe_load((PROJECT / "pipelines" / "digits-quick.yaml").read_text())
        first_spec["trainer"]["params"]["steps"] = 300
        first_spec["tuner"]["num_samples"] = 1
        first = run_deployment("train/digits-quick", parameters={"spec": first_spec}, timeout=1200)
        assert first.state.type.value == "COMPLETED", first.state
        tracking.configure(settings)
        registry = MlflowClient()
        champion_v1 = registry.get_model_version_by_alias(model, "champion").version

        # nothing new under the spec's own source: calm, no event
        calm = drift_check("pipelines/digits-quick.yaml", incoming=spec.data.source, push_features=False)
        assert calm["status"] == "no new images" and calm["event_id"] is None

        seed_digits(s3_client, incoming, 0, 400, invert=True)  # 400 inverted digits land
        checked = run_deployment("drift_check/digits-quick", timeout=600)
        assert checked.state.type.value == "COMPLETED", checked.state
        events = drift_events(RESOURCE, wait=30)
        assert len(events) == 1 and events[0].payload["new_images"] == 400 and "spec" not in events[0].payload
        for _ in range(2):  # a storm of drift events (e.g. other checks) inside the cooldown: still one retrain
            emit_event(
                event="canvascraft.drift.detected",
                resource={"prefect.resource.id": RESOURCE},
                payload=events[0].payload,
            )

        runs = wait_terminal(client, "train/digits-quick", 2, timeout=1500)
        assert len(runs) == 2, [(r.name, r.state.name) for r in runs]
        retrain = next(r for r in runs if r.id != first.id)
        assert retrain.state.type.value == "COMPLETED", retrain.state.message
        incoming_version = events[0].payload["incoming_dataset_version"]
        # the deployment's own spec; the event only added data
        assert retrain.parameters == {
            "spec": "pipelines/digits-quick.yaml",
            "extra_sources": [incoming],
            "incoming_dataset_version": incoming_version,
        }

        # the verdict compares like with like: the champion re-scored on the retrain's reference and terms
        verdicts = retrain_events(incoming_version, wait=90)
        assert len(verdicts) == 1, [e.payload for e in verdicts]
        payload = verdicts[0].payload
        # a new reference (the incoming images joined the data): no registered or cached score matches, so re-scored
        assert payload["basis"] == "rescored" and payload["champion_version"] == champion_v1
        assert payload["metric"] == "classifier_score"  # the quick profile gates on what a user sees
        candidate, champion = payload["candidate_score"], payload["champion_score"]
        for key in ("n", "n_real", "dims", "weights_sha256", "resize", "reference"):
            assert candidate[key] == champion[key], key
        for key in ("classifier", "confident", "n"):  # the champion read by the candidate's own classifier
            assert candidate["classifier"][key] == champion["classifier"][key], key
        print(f"retrain verdict: {payload['summary']}")
        version = registry.get_model_version(model, payload["version"])
        assert version.tags["gate_basis"] == payload["basis"] and version.tags["gate_champion_version"] == champion_v1
        champion_now = registry.get_model_version_by_alias(model, "champion").version
        assert champion_now == (payload["version"] if payload["promoted"] else champion_v1)

        # calm: the same prefix again, through the deployment: no event, no run
        again = run_deployment("drift_check/digits-quick", timeout=600)
        assert again.state.type.value == "COMPLETED", again.state
        time.sleep(15)
        assert len(drift_events(RESOURCE, wait=0)) == 3  # the 1 real + 2 simulated, nothing new
        assert len(flow_runs(client, "train/digits-quick")) == 2
        second = drift_check("pipelines/digits-quick.yaml", push_features=False)
        expected = "no new images" if payload["promoted"] else "already retrained"
        assert second["status"] == expected and second["event_id"] is None, second
    print(f"retraining loop end to end: {time.monotonic() - began:.0f}s")
