"""e2e: the committed MLflow basic-auth config and ``infra/mlflow/init_users.py`` against a real
``mlflow server --app-name basic-auth`` (the ``mlflow_basic_auth`` fixture in conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.infra.infra_files import INFRA, http_status


def run_init_users(url: str, admin: tuple[str, str], worker: tuple[str, str]) -> subprocess.CompletedProcess[str]:
    """infra/mlflow/init_users.py as the mlflow-init service runs it."""
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_TRACKING_USERNAME": admin[0],
        "MLFLOW_TRACKING_PASSWORD": admin[1],
        "MLFLOW_WORKER_USERNAME": worker[0],
        "MLFLOW_WORKER_PASSWORD": worker[1],
    }
    return subprocess.run(
        [sys.executable, str(INFRA / "mlflow" / "init_users.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.e2e
def test_mlflow_basic_auth_refuses_anonymous_and_init_creates_a_non_admin_worker(
    mlflow_basic_auth: tuple[str, tuple[str, str]],
) -> None:
    url, admin = mlflow_basic_auth
    search = url + "/api/2.0/mlflow/experiments/search?max_results=1"
    assert http_status(search) == 401
    assert http_status(search, auth=admin) == 200
    worker = ("canvascraft-worker", "worker-password-one")
    first = run_init_users(url, admin, worker)
    assert first.returncode == 0 and "created" in first.stdout, first.stderr[-2000:]
    assert http_status(search, auth=worker) == 200
    rotated = ("canvascraft-worker", "worker-password-two")
    again = run_init_users(url, admin, rotated)
    assert again.returncode == 0 and "updated" in again.stdout, again.stderr[-2000:]
    assert http_status(search, auth=worker) == 401 and http_status(search, auth=rotated) == 200
    # the worker may write (default_permission) but not manage users
    create_experiment = json.dumps({"name": "auth-check"}).encode()
    assert http_status(url + "/api/2.0/mlflow/experiments/create", auth=rotated, data=create_experiment) == 200
    new_user = json.dumps({"username": "intruder", "password": "intruder-password"}).encode()
    assert http_status(url + "/api/2.0/mlflow/users/create", auth=rotated, data=new_user) == 403
