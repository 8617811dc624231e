"""`canvascraft stack up|status|env|down` of the whole local stack, as a user runs it: real processes (rclone S3,
Debian redis-server and Pushgateway, MLflow server, Prefect server, a process worker on gpu-pool) on free loopback
ports under a temp home: up, idempotent up, down, up again after down, and recovery after `kill -9` of services. A
few minutes on 2 cores (MLflow and Prefect servers start twice)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from canvascraft.stack.process import free_port, pid_alive
from canvascraft.stack.services import redis_answers

# A real `prefect server start`: runs in the separate prefect_server pytest process (see Makefile `test`).
pytestmark = [pytest.mark.e2e, pytest.mark.prefect_server]

PROJECT = Path(__file__).resolve().parents[3]
SERVICES = ["s3", "redis", "pushgateway", "mlflow", "prefect", "worker"]


def _cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,  # callers read the return code (status exits 1 when a service is down)
    )


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_stack_up_status_env_down_and_back_up(tmp_path: Path) -> None:
    for binary in ("prometheus-pushgateway", "redis-server"):
        if shutil.which(binary) is None:
            pytest.skip(f"Debian package {binary} not installed (make apt)")
    ports = {name: free_port() for name in ("s3", "redis", "pushgateway", "mlflow", "prefect")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CANVASCRAFT_", "PREFECT_API_URL"))}
    env.update(
        {
            "CANVASCRAFT_HOME": str(tmp_path / "home"),
            "PREFECT_HOME": str(tmp_path / "prefect-cli"),
            **{f"CANVASCRAFT_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        }
    )
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
        assert redis_answers("127.0.0.1", ports["redis"])
        # the artifact bucket exists on the embedded S3 and MLflow writes its artifacts there
        assert (tmp_path / "home" / "s3" / "canvascraft-artifacts").is_dir()
        mlflow_state = json.loads((tmp_path / "home" / "stack" / "mlflow.json").read_text())
        assert mlflow_state["artifacts_destination"] == "s3://canvascraft-artifacts/mlflow"
        assert (
            _cli(env, "stack", "env").stdout.strip()
            == f"export PREFECT_API_URL=http://127.0.0.1:{ports['prefect']}/api"
        )

        again = _cli(env, "stack", "up")  # idempotent: the same processes keep running
        assert again.returncode == 0
        assert {s["name"]: s["pid"] for s in json.loads(_cli(env, "stack", "status", "--json").stdout)} == {
            name: s["pid"] for name, s in services.items()
        }
    finally:
        down = _cli(env, "stack", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert all(f"{name}: stopped" in down.stdout for name in SERVICES), down.stdout
    assert not any(pid_alive(int(s["pid"])) for s in services.values())
    assert not any(_listening(port) for port in ports.values())
    after = _cli(env, "stack", "status", "--json")
    assert after.returncode == 0 and not any(s["running"] for s in json.loads(after.stdout))
    assert _cli(env, "stack", "status").returncode == 1  # the table form exits 1 when a service is down

    # Up again after down (the previous start's logs and credentials are still in the home), then kill -9 two
    # services: status tells the truth, and `stack up` brings back exactly what died.
    began = time.monotonic()
    try:
        again = _cli(env, "stack", "up")
        assert again.returncode == 0, again.stdout + again.stderr
        restarted = {s["name"]: s for s in json.loads(_cli(env, "stack", "status", "--json").stdout)}
        assert all(s["healthy"] for s in restarted.values()), restarted
        assert (
            _get(f"http://127.0.0.1:{ports['prefect']}/") == 200 and _get(f"http://127.0.0.1:{ports['mlflow']}/") == 200
        )
        print(f"stack up after down: {time.monotonic() - began:.1f}s")

        for name in ("worker", "s3"):
            os.kill(int(restarted[name]["pid"]), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(pid_alive(int(restarted[n]["pid"])) for n in ("worker", "s3")) and time.monotonic() < deadline:
            time.sleep(0.1)
        crashed = _cli(env, "stack", "status", "--json")
        states = {s["name"]: s for s in json.loads(crashed.stdout)}
        for name in ("worker", "s3"):
            assert states[name]["running"] is False and states[name]["healthy"] is False, states[name]
        assert all(states[n]["healthy"] for n in ("redis", "pushgateway", "mlflow", "prefect")), states
        assert _cli(env, "stack", "status").returncode == 1

        recovered = _cli(env, "stack", "up")
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
        final = {s["name"]: s for s in json.loads(_cli(env, "stack", "status", "--json").stdout)}
        assert all(s["healthy"] for s in final.values()), final
        assert {n: final[n]["pid"] for n in ("redis", "pushgateway", "mlflow", "prefect")} == {
            n: restarted[n]["pid"] for n in ("redis", "pushgateway", "mlflow", "prefect")
        }  # the live ones were kept
        assert all(final[n]["pid"] != restarted[n]["pid"] for n in ("worker", "s3"))
        print(f"up -> down -> up -> kill -9 -> up: {time.monotonic() - began:.1f}s")
    finally:
        assert _cli(env, "stack", "down").returncode == 0
    assert not any(_listening(port) for port in ports.values())
