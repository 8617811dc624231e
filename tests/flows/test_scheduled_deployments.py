"""Schedules really fire on a real server: after `canvascraft deploy` every scheduled deployment of prefect.yaml
has scheduled runs and the server's scheduler logs no error; an interval deployment is run by the process worker.
(SQLAlchemy 2.1 broke Prefect 3.8's scheduler silently: zero scheduled runs, an error per pass in the server log.)"""

from __future__ import annotations

import itertools
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tests.prefect_server_helpers import PROJECT, PrefectStack, flow_runs

pytestmark = [pytest.mark.e2e, pytest.mark.prefect_server]

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
ENTRY = re.compile(r"^\d\d:\d\d:\d\d\.\d+ \|", re.MULTILINE)  # the server log's timestamped entry start


def scheduler_errors(log: str) -> list[str]:
    """Error entries of the server log (with their tracebacks) that come from the scheduler services.

    Other services' errors are not this test's subject (sqlite "database is locked" retries of the automation
    consumer show up under load, see docs/operations.md); the SQLAlchemy 2.1 defect raised InvalidRequestError in
    ``schedule_recent_deployments`` on every pass.
    """
    starts = [m.start() for m in ENTRY.finditer(log)] + [len(log)]
    entries = [log[a:b] for a, b in itertools.pairwise(starts)]
    # by the logger of the scheduler services, not by the word: another service's entry may quote a state's
    # "scheduled_time" (e.g. the task-run recorder's "database is locked" retry)
    return [
        e
        for e in entries
        if ("| ERROR" in e or "Traceback" in e)
        and (
            "prefect.server.services.scheduler" in e
            or "schedule_recent_deployments" in e
            or "InvalidRequestError" in e
            or "bulk DML" in e
        )
    ]


def scheduled_deployments() -> list[str]:
    """``flow/name`` of every deployment in prefect.yaml that declares a schedule."""
    flows = {
        "flows/train.py:train": "train",
        "flows/drift_check.py:drift_check": "drift_check",
        "flows/rollback.py:rollback": "rollback",
    }
    declared = yaml.safe_load((PROJECT / "prefect.yaml").read_text())["deployments"]
    return [f"{flows[d['entrypoint']]}/{d['name']}" for d in declared if d.get("schedules")]


def test_every_scheduled_deployment_has_scheduled_runs(prefect_stack: PrefectStack) -> None:
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    names = scheduled_deployments()
    assert names, "prefect.yaml declares no schedule"
    counts: dict[str, int] = {}
    # the server's recent-deployments scheduler pass runs every 5 s; allow a busy machine some slack
    deadline = time.monotonic() + 60
    with temporary_settings({PREFECT_API_URL: prefect_stack.api_url}), get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            counts = {name: sum(r.state.type.value == "SCHEDULED" for r in flow_runs(client, name)) for name in names}
            if all(counts.values()):
                break
            time.sleep(1)
    print(f"scheduled runs after deploy: {counts} (total {sum(counts.values())})")
    assert all(counts.values()), counts
    errors = scheduler_errors(prefect_stack.server_log.read_text(errors="replace"))
    assert not errors, errors[-1][-3000:]


def test_an_interval_schedule_fires_and_the_worker_runs_it(prefect_stack: PrefectStack) -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import IntervalSchedule
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_stack.api_url}), get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("scheduled-probe")
        deployment_id = client.create_deployment(
            flow_id=flow_id,
            name="every-5s",
            work_pool_name="gpu-pool",
            entrypoint=str(Path(__file__).with_name("scheduled_probe.py").relative_to(PROJECT)) + ":scheduled_probe",
            pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT)}}],
            schedules=[DeploymentScheduleCreate(schedule=IntervalSchedule(interval=timedelta(seconds=5)))],
        )
        try:
            completed = []
            deadline = time.monotonic() + 180
            while not completed and time.monotonic() < deadline:
                runs = flow_runs(client, "scheduled-probe/every-5s")
                completed = [r for r in runs if r.state.type.value == "COMPLETED"]
                failed = [r for r in runs if r.state.type.value in TERMINAL - {"COMPLETED"}]
                assert not failed, [(r.name, r.state.name, r.state.message) for r in failed]
                time.sleep(1)
            assert completed, prefect_stack.worker_log.read_text(errors="replace")[-3000:]
            # created by the scheduler (not by hand) and executed by the worker of gpu-pool
            assert completed[0].auto_scheduled and completed[0].work_pool_name == "gpu-pool"
        finally:
            client.delete_deployment(deployment_id)  # its future runs go with it: the worker stays free
