"""One real Prefect stack for the flow tests that need a server: an MLflow server, `prefect server start`,
`canvascraft deploy` of prefect.yaml, and a process worker polling gpu-pool. Started once per pytest process, on
first use (only the ``prefect_server`` process of `make test` uses it)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from canvascraft.settings import get_settings
from canvascraft.stack.process import free_port
from canvascraft.stack.services import mlflow_service, prefect_service, worker_service
from tests.prefect_server_helpers import PROJECT, PrefectStack


@pytest.fixture(scope="session")
def prefect_stack(s3_settings, tmp_path_factory) -> Iterator[PrefectStack]:
    """Real MLflow and Prefect servers on free loopback ports, `canvascraft deploy` applied, and a process worker."""
    feast_dir = tmp_path_factory.mktemp("drift-feast")
    os.environ["CANVASCRAFT_FEAST_DATA"] = str(feast_dir)  # the worker's flow runs inherit it
    settings = get_settings(prefect_port=free_port(), mlflow_port=free_port())  # the session home (S3 state)
    # An MLflow server over the session's sqlite store: the worker's runs and this process share it (the settings
    # of every process with this home find it through <home>/stack/mlflow.json).
    tracking_server = mlflow_service(settings)
    tracking_server.start()
    server = prefect_service(settings)
    server.start()
    api = f"http://127.0.0.1:{settings.prefect_port}/api"
    worker = worker_service(settings, PROJECT)
    worker.env.update({"PREFECT_LOGGING_LEVEL": "INFO", "PREFECT_WORKER_QUERY_SECONDS": "2"})
    try:
        env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(settings.home / "prefect-cli")}
        deploy = subprocess.run(
            [sys.executable, "-m", "cli.main", "deploy"],
            check=False,  # the exit code is checked below, with the output
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        worker.start()
        yield PrefectStack(api, server.log_path, worker.log_path, deploy.stdout)
    finally:
        worker.stop()
        server.stop()
        tracking_server.stop()
        os.environ.pop("CANVASCRAFT_FEAST_DATA", None)


@pytest.fixture(scope="session")
def prefect_api(prefect_stack: PrefectStack) -> str:
    """The API URL of the session's real Prefect server (deployments applied, a worker polling gpu-pool)."""
    return prefect_stack.api_url
