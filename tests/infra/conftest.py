"""Fixtures of the infra tests: a real ``mlflow server --app-name basic-auth`` with the committed ini."""

from __future__ import annotations

import configparser
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.infra_files import MLFLOW_INI, free_port, http_status, listening


@pytest.fixture
def mlflow_basic_auth(tmp_path: Path) -> Iterator[tuple[str, tuple[str, str]]]:
    """`mlflow server --app-name basic-auth` on loopback with the committed ini (its user store moved to tmp)."""
    ini = tmp_path / "basic_auth.ini"
    parser = configparser.ConfigParser()
    parser.read(MLFLOW_INI)
    parser["mlflow"]["database_uri"] = f"sqlite:///{tmp_path / 'basic_auth.db'}"  # /var/lib is not writable here
    with ini.open("w") as handle:
        parser.write(handle)
    admin = ("admin", "admin-password-for-test")
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_USERNAME": admin[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key",
    }
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--app-name",
            "basic-auth",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not (listening(port) and http_status(url + "/health") == 200):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url, admin
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the group this fixture started (uvicorn's worker included)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
