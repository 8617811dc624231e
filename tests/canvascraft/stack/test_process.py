"""ManagedService supervision with real processes (a Python HTTP server): health is judged on the process this
start launched, stale state and logs never count, a dead leader's children are cleared, state files are 0600."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import time
from pathlib import Path

import pytest

from canvascraft.errors import StackError
from canvascraft.stack.process import (
    ManagedService,
    free_port,
    group_alive,
    http_answers,
    pid_alive,
    port_in_use,
    process_start_ticks,
    read_live_state,
)


def http_service(home: Path, port: int, *, spawn_child: bool = False) -> ManagedService:
    """A tiny real service; with ``spawn_child`` the listener is a child of the recorded process (like MLflow's
    uvicorn)."""
    serve = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    wrapper = [sys.executable, "-c", f"import subprocess; subprocess.Popen({serve!r}).wait()"]
    command = wrapper if spawn_child else serve
    url = f"http://127.0.0.1:{port}/"
    return ManagedService(
        "web",
        home,
        command,
        url,
        lambda: http_answers(url),
        port=port,
        port_setting="CANVASCRAFT_WEB_PORT",
        startup_timeout=30,
    )


def wait_until(predicate, timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_state_file_is_private_and_records_the_process(tmp_path: Path) -> None:
    service = http_service(tmp_path, free_port())
    started = service.start()
    try:
        mode = stat.S_IMODE(service.state_path.stat().st_mode)
        assert mode == 0o600, oct(mode)
        record = json.loads(service.state_path.read_text())
        assert record["pid"] == started["pid"] and record["start_ticks"] == process_start_ticks(started["pid"])
        assert started["healthy"] and service.start()["pid"] == started["pid"]  # idempotent
    finally:
        assert service.stop()
    assert not service.state_path.exists() and not port_in_use(service.port or 0)


def test_stale_state_and_old_log_never_count(tmp_path: Path) -> None:
    """A state file of a dead process and a log saying 'started!' from an earlier run are not a running service."""
    port = free_port()
    service = http_service(tmp_path, port)
    service.probe = lambda: "started!" in service.tail_log()  # a log-based probe, like the worker's
    service.state_path.parent.mkdir(parents=True)
    service.log_path.parent.mkdir(parents=True)
    service.log_path.write_text("Worker 'x' started!\n")  # the previous start's log
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    service.state_path.write_text(json.dumps({"pid": dead, "url": service.url}))
    status = service.status()
    assert status["running"] is False and status["healthy"] is False and status["pid"] is None
    assert read_live_state(service.state_path) is None
    # the start is not refused because of the old log line; it fails only because this start never logs it
    service.startup_timeout = 3
    with pytest.raises(StackError, match="did not become healthy"):
        service.start()
    assert not port_in_use(port)


def test_recycled_pid_is_not_trusted_and_not_killed(tmp_path: Path) -> None:
    """A recorded pid now belonging to another process (here: this test) is down, and stop() leaves it alone."""
    service = http_service(tmp_path, free_port())
    service.state_path.parent.mkdir(parents=True)
    ticks = process_start_ticks(os.getpid())
    if ticks is None:
        pytest.skip("no /proc here: start times are not available")
    service.state_path.write_text(json.dumps({"pid": os.getpid(), "start_ticks": ticks - 1, "url": service.url}))
    assert service.status()["running"] is False
    assert service.stop() is False and pid_alive(os.getpid())


def test_killed_leader_is_restarted_and_its_children_cleared(tmp_path: Path) -> None:
    """kill -9 of the recorded process leaves its child holding the port: status says down, start brings it back."""
    port = free_port()
    service = http_service(tmp_path, port, spawn_child=True)
    first = service.start()
    try:
        os.kill(first["pid"], signal.SIGKILL)
        assert wait_until(lambda: not pid_alive(first["pid"]))
        assert port_in_use(port) and group_alive(first["pid"])  # the orphaned listener still answers
        status = service.status()
        assert status["running"] is False and status["healthy"] is False
        again = service.start()
        assert again["healthy"] and again["pid"] != first["pid"]
        assert not group_alive(first["pid"])  # the old group is gone
    finally:
        service.stop()
    assert not port_in_use(port)


def test_foreign_listener_is_named_with_the_real_setting(tmp_path: Path) -> None:
    port = free_port()
    squatter = http_service(tmp_path / "other", port)
    squatter.start()
    try:
        with pytest.raises(StackError) as raised:
            http_service(tmp_path / "mine", port).start()
        message = str(raised.value)
        assert f"127.0.0.1:{port}" in message and "CANVASCRAFT_WEB_PORT" in message
    finally:
        squatter.stop()


def test_stack_port_hints_name_existing_settings(tmp_path: Path) -> None:
    """Every port hint of the real stack names a field of Settings (CANVASCRAFT_<FIELD>)."""
    from canvascraft.settings import Settings
    from canvascraft.stack.services import stack_services

    settings = Settings(home=tmp_path)
    for service in stack_services(settings, tmp_path, ["s3", "mlflow", "prefect"]):
        assert service.port_setting is not None
        field = service.port_setting.removeprefix("CANVASCRAFT_").lower()
        assert field in Settings.model_fields and getattr(settings, field) == service.port
