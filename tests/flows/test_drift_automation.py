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
from tests.drift_helpers import drift_events, drift_spec, make_champion, seed_digits
from tests.prefect_server_helpers import flow_runs

# Runs in its own pytest process (see Makefile `test`): it talks to a real Prefect server, the rest of the
# suite to the session's test harness, and one process should not switch between the two APIs.
pytestmark = [pytest.mark.e2e, pytest.mark.prefect_server]

PROJECT = Path(__file__).resolve().parents[2]
PIPELINE = "digits-quick"  # the train deployment train/digits-quick retrains on drift of this pipeline
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def test_deployments_from_prefect_yaml(prefect_api: str) -> None:
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    declared = yaml.safe_load((PROJECT / "prefect.yaml").read_text())["deployments"]
    entry_flows = {"flows/train.py:train": "train", "flows/drift_check.py:drift_check": "drift_check",
                   "flows/rollback.py:rollback": "rollback"}
    with temporary_settings({PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as client:
        for item in declared:
            deployment = client.read_deployment_by_name(f"{entry_flows[item['entrypoint']]}/{item['name']}")
            assert deployment.work_pool_name == "gpu-pool"
        train = client.read_deployment_by_name("train/fashion-gpu")
        assert train.job_variables["gpu"] == 1 and train.global_concurrency_limit.limit == 1
        assert train.concurrency_options.collision_strategy.value == "CANCEL_NEW"
        drift = client.read_deployment_by_name("drift_check/digits-quick")
        assert [s.schedule.cron for s in drift.schedules] == ["0 * * * *"]
        names = {a["name"]: a for a in client.request("POST", "/automations/filter", json={}).json()}
        assert {"retrain-digits-quick-on-drift", "retrain-fashion-gpu-on-drift",
                "canvascraft-cancel-stuck-retrain"} <= set(names)
        assert names["retrain-digits-quick-on-drift"]["trigger"]["within"] == 900.0


def test_drift_starts_one_retrain_with_the_incoming_data(prefect_api: str, s3_client, bucket: str,
                                                         tmp_path: Path) -> None:
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.drift_check import drift_check

    reference, same, inverted = (f"s3://{bucket}/{p}" for p in ("reference", "same", "inverted"))
    seed_digits(s3_client, reference, 0, 150)
    seed_digits(s3_client, same, 150, 250)
    seed_digits(s3_client, inverted, 150, 250, invert=True)
    raw = drift_spec(bucket, PIPELINE, f"e2e-drift-{bucket}")
    spec_path = tmp_path / "digits-quick-e2e.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    make_champion(load_spec(raw), get_settings(), s3_client)
    resource = f"canvascraft.pipeline.{PIPELINE}"

    with temporary_settings({PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as client:
        # no drift: no event, no run
        calm = drift_check(str(spec_path), incoming=same)
        assert not calm["dataset_drift"] and calm["event_id"] is None
        assert drift_events(resource, wait=3) == [] and flow_runs(client, "train/digits-quick") == []

        # drift, through the drift_check deployment on the worker: the automation starts train/digits-quick
        checked = run_deployment("drift_check/digits-quick", parameters={"spec": str(spec_path), "incoming": inverted},
                                 timeout=240)
        assert checked.state.type.value == "COMPLETED", checked.state
        assert len(drift_events(resource, wait=20)) == 1

        # two more drift events right away (in-process flow runs): still one retrain
        for _ in range(2):
            assert drift_check(str(spec_path), incoming=inverted, push_features=False)["dataset_drift"]
        deadline = time.monotonic() + 30
        while len(drift_events(resource, wait=0)) < 3 and time.monotonic() < deadline:
            time.sleep(1)
        assert len(drift_events(resource, wait=0)) == 3

        deadline = time.monotonic() + 180
        runs = flow_runs(client, "train/digits-quick")
        while (not runs or runs[0].state.type.value not in TERMINAL) and time.monotonic() < deadline:
            time.sleep(2)
            runs = flow_runs(client, "train/digits-quick")
        assert len(runs) == 1, [(r.name, r.state.name) for r in runs]
        run = runs[0]
        assert run.parameters == {"spec": str(spec_path), "extra_sources": [inverted]}
        assert run.state.type.value == "COMPLETED", run.state.message

    # the retrain ingested the original source plus the incoming prefix
    manifests = [yaml.safe_load(p.read_text()) for p in (get_settings().home / "manifests").glob("*.json")]
    assert any(m["sources"] == [reference, inverted] and len(m["entries"]) == 250 for m in manifests)
