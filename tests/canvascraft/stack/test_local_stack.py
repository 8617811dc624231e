"""`canvascraft stack up|status|env|down` of the whole local stack, as a user runs it: real processes (rclone S3,
Debian Pushgateway, MLflow server, Prefect server, a process worker on gpu-pool) on free loopback ports under a
temp home. About a minute on 2 cores (MLflow and Prefect servers start)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from canvascraft.stack.process import free_port, pid_alive

# A real `prefect server start`: runs in the separate prefect_server pytest process (see Makefile `test`).
pytestmark = [pytest.mark.e2e, pytest.mark.prefect_server]

PROJECT = Path(__file__).resolve().parents[3]
SERVICES = ["s3", "pushgateway", "mlflow", "prefect", "worker"]


def _cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "canvascraft.cli", *args], cwd=PROJECT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_stack_up_status_env_down(tmp_path: Path) -> None:
    if shutil.which("prometheus-pushgateway") is None:
        pytest.skip("Debian package prometheus-pushgateway not installed (make apt)")
    ports = {name: free_port() for name in ("s3", "pushgateway", "mlflow", "prefect")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CANVASCRAFT_", "PREFECT_API_URL"))}
    env.update({"CANVASCRAFT_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "prefect-cli"),
                **{f"CANVASCRAFT_{name.upper()}_PORT": str(port) for name, port in ports.items()}})
    try:
        up = _cli(env, "stack", "up")
        assert up.returncode == 0, up.stdout + up.stderr
        status = _cli(env, "stack", "status", "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        services = {s["name"]: s for s in json.loads(status.stdout)}
        assert list(services) == SERVICES and all(s["healthy"] for s in services.values())
        for name, port in ports.items():
            assert f"127.0.0.1:{port}" in services[name]["url"]
            assert Path(services[name]["log"]).is_relative_to(tmp_path / "home")
        assert _get(f"http://127.0.0.1:{ports['prefect']}/") == 200  # the Prefect UI
        assert _get(f"http://127.0.0.1:{ports['mlflow']}/") == 200  # the MLflow UI
        assert _get(f"http://127.0.0.1:{ports['pushgateway']}/-/ready") == 200
        assert _cli(env, "stack", "env").stdout.strip() == f"export PREFECT_API_URL=http://127.0.0.1:{ports['prefect']}/api"

        again = _cli(env, "stack", "up")  # idempotent: the same processes keep running
        assert again.returncode == 0
        assert {s["name"]: s["pid"] for s in json.loads(_cli(env, "stack", "status", "--json").stdout)} == {
            name: s["pid"] for name, s in services.items()}
    finally:
        down = _cli(env, "stack", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert all(f"{name}: stopped" in down.stdout for name in SERVICES), down.stdout
    assert not any(pid_alive(int(s["pid"])) for s in services.values())
    assert not any(_listening(port) for port in ports.values())
    after = _cli(env, "stack", "status", "--json")
    assert after.returncode == 0 and not any(s["running"] for s in json.loads(after.stdout))
    assert _cli(env, "stack", "status").returncode == 1  # the table form exits 1 when a service is down
