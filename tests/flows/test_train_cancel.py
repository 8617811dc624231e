"""A cancel is a cancel: `prefect flow-run cancel` of a train run on the process worker while its trials run ends
in Cancelled (not Crashed), stops every trial process, pushes no failure series, and leaves the Tune experiment
restorable: the rerun of the same spec resumes it. Real server, worker, Ray, MLflow server and Pushgateway."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from canvascraft.settings import Settings, get_settings
from canvascraft.stack.process import free_port
from canvascraft.stack.services import pushgateway_service
from tests.prefect_server_helpers import PROJECT

pytestmark = [pytest.mark.e2e, pytest.mark.prefect_server]
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def ray_processes() -> dict[int, str]:
    """pid -> cmdline of every Ray worker process on this machine (trials run in ``ray::`` processes)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmdline.startswith("ray::"):
                found[int(entry.name)] = cmdline
    return found


def cancel_spec(bucket_source: str) -> dict:
    """digits-quick with longer trials (so the cancel lands mid-search) under its own name and model."""
    spec = yaml.safe_load((PROJECT / "pipelines" / "digits-quick.yaml").read_text())
    spec["name"] = "digits-cancel"
    spec["data"]["source"] = bucket_source
    spec["trainer"]["params"].update({"steps": 160, "log_every": 10})
    spec["tuner"]["checkpoint_every"] = 20
    spec["publish"]["registered_model"] = "canvascraft-digits-cancel"
    spec.pop("drift", None)
    return spec


def test_cancel_during_tune_is_cancelled_frees_trials_and_resumes(
    prefect_api: str, s3_client, bucket: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from canvascraft import tracking
    from canvascraft.datasets import seed_dataset

    if shutil.which("prometheus-pushgateway") is None:
        pytest.skip("Debian package prometheus-pushgateway not installed (make apt)")
    gateway = pushgateway_service(Settings(home=tmp_path / "gw", pushgateway_port=free_port()))
    gateway.start()
    try:
        seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=600)
        spec = cancel_spec(f"s3://{bucket}/digits")
        env = {"CANVASCRAFT_PUSHGATEWAY_URL": gateway.url.removeprefix("http://")}
        # Ray processes of other sessions on this machine (another test run, a notebook) are not this run's
        elsewhere = set(ray_processes())

        def run_processes() -> dict[int, str]:
            return {pid: cmd for pid, cmd in ray_processes().items() if pid not in elsewhere}

        with temporary_settings({PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as client:
            run = run_deployment("train/digits-quick", parameters={"spec": spec}, job_variables={"env": env}, timeout=0)
            # wait until the tune task runs and trial processes exist, then let a checkpoint land
            deadline = time.monotonic() + 600
            trials: dict[int, str] = {}
            while time.monotonic() < deadline:
                tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
                # a task run may be read between its creation and its first state (state None)
                if any(
                    t.name.startswith("tune") and t.state is not None and t.state.type.value == "RUNNING" for t in tasks
                ):
                    trials = run_processes()
                    if any("train_trial" in c or "ImplicitFunc" in c for c in trials.values()):
                        break
                current = client.read_flow_run(run.id).state
                assert current is None or current.type.value not in TERMINAL, current
                time.sleep(1)
            assert trials, "the tune stage never started trial processes"
            time.sleep(25)  # a checkpoint (every 20 steps) exists before the cancel
            trials = run_processes()

            cli_env = {**os.environ, "PREFECT_API_URL": prefect_api}
            cancelled_at = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "prefect", "flow-run", "cancel", str(run.id)],
                check=False,  # the exit code is checked below, with the output
                env=cli_env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            state = client.read_flow_run(run.id).state
            to_freed = None
            while (state is None or state.type.value not in TERMINAL) and time.monotonic() - cancelled_at < 180:
                time.sleep(0.5)
                if to_freed is None and not any(os.path.exists(f"/proc/{pid}") for pid in trials):
                    to_freed = time.monotonic() - cancelled_at
                state = client.read_flow_run(run.id).state
            to_cancelled = time.monotonic() - cancelled_at
            assert state.type.value == "CANCELLED", (state.name, state.message)
            while any(os.path.exists(f"/proc/{pid}") for pid in trials) and time.monotonic() - cancelled_at < 60:
                time.sleep(0.5)
            left = [pid for pid in trials if os.path.exists(f"/proc/{pid}")]
            to_freed = to_freed if to_freed is not None else time.monotonic() - cancelled_at
            assert not left, {pid: trials[pid] for pid in left}
            print(f"cancel (CLI start) -> last trial process gone {to_freed:.1f}s; -> Cancelled {to_cancelled:.1f}s")

            with urllib.request.urlopen(gateway.url + "/metrics", timeout=10) as response:
                pushed = response.read().decode()
            failure_lines = [
                line
                for line in pushed.splitlines()
                if 'pipeline="digits-cancel"' in line
                and line.startswith(("canvascraft_flow_failures_total", "canvascraft_last_failure"))
            ]
            assert not [line for line in failure_lines if not line.rstrip().endswith(" 0")], failure_lines

            rerun = run_deployment(
                "train/digits-quick", parameters={"spec": spec}, job_variables={"env": env}, timeout=900
            )
            assert rerun.state.type.value == "COMPLETED", rerun.state
        settings = get_settings()
        tracking.configure(settings)
        experiment = MlflowClient().get_experiment_by_name("digits-cancel")
        runs = MlflowClient().search_runs([experiment.experiment_id], filter_string="tags.tune_restored = 'True'")
        assert runs, "the rerun did not restore the cancelled Tune experiment"
    finally:
        gateway.stop()
