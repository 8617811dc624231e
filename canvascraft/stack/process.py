"""A long-running local service: start detached, health-check, record pid and state, stop cleanly.

Health is always judged on the process this start launched: its recorded pid must be alive *and be the same
process* (its kernel start time is recorded beside the pid, so a recycled pid never counts), and the service's
probe must answer. A state file whose process is gone is stale: it is ignored by readers and cleared (with any
surviving members of the old process group) by the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canvascraft.errors import StackError
from canvascraft.files import atomic_path


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (for tests and ad-hoc stacks)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def http_answers(url: str, timeout: float = 2.0) -> bool:
    """True when an HTTP server answers at ``url`` with any status (a 403 still proves it is up)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists (and is not a zombie we own)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True


def process_start_ticks(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot, proc(5) ``stat`` field 22); None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (comm) may hold spaces and parentheses: split after its closing parenthesis.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])  # fields[0] is field 3 (state), so field 22 is fields[19]


def group_alive(pgid: int) -> bool:
    """True when any process of the process group ``pgid`` still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_private_json(path: Path, record: dict[str, Any]) -> None:
    """Write ``record`` atomically to a file created with mode 0600 (never readable by others, not even briefly)."""
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle, indent=1)


def read_live_state(path: Path) -> dict[str, Any] | None:
    """A service's recorded state when its process is still the one recorded, else None (stale or absent)."""
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(state, dict) or "pid" not in state:
        return None
    return state if state_process_alive(state) else None


def state_process_alive(state: dict[str, Any]) -> bool:
    """True when the recorded pid is alive and (where the kernel tells) was started when the record says."""
    pid = int(state["pid"])
    if not pid_alive(pid):
        return False
    recorded, current = state.get("start_ticks"), process_start_ticks(pid)
    return recorded is None or current is None or int(recorded) == current


def _ours_to_stop(state: dict[str, Any]) -> bool:
    """True when the recorded process, or what survives of its group, is still running.

    The kernel never hands out a pid still in use as a process-group id, so a group whose leader has died can
    only hold the leader's own children (e.g. MLflow's uvicorn after a ``kill -9`` of ``mlflow server``); a
    recycled pid that is somebody else's process is left alone.
    """
    pid = int(state["pid"])
    if state_process_alive(state):
        return True
    return not pid_alive(pid) and group_alive(pid)


@dataclass
class ManagedService:
    """A service of the local stack; state lives in ``<home>/stack/<name>.json``, logs in ``<home>/logs``.

    ``probe`` says whether the service answers (an HTTP health endpoint, or this start's log for a service with
    no port); it is only trusted together with the recorded process. ``port`` (if any) is checked before a start
    so a foreign listener is reported with the setting that moves the service (``port_setting``).
    """

    name: str
    home: Path
    command: list[str]
    url: str
    probe: Callable[[], bool]
    port: int | None = None
    port_setting: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    startup_timeout: float = 60.0
    cwd: Path | None = None

    @property
    def state_path(self) -> Path:
        """JSON with pid, url and service-specific state; present only while the service runs."""
        return self.home / "stack" / f"{self.name}.json"

    @property
    def log_path(self) -> Path:
        """The service's combined stdout/stderr (this start's only; the previous start's is ``.log.1``)."""
        return self.home / "logs" / f"{self.name}.log"

    def read_state(self) -> dict[str, Any] | None:
        """The recorded state of the running process, or None (never started, stopped, or its process died)."""
        return read_live_state(self.state_path)

    def _recorded(self) -> dict[str, Any] | None:
        """The state file as written, alive or not (only to clean up after a dead start)."""
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return state if isinstance(state, dict) and "pid" in state else None

    def status(self) -> dict[str, Any]:
        """``{"name", "running", "healthy", "url", "pid", "log"}``; a dead recorded process is down, not healthy."""
        state = self.read_state()
        running = state is not None
        return {
            "name": self.name,
            "running": running,
            "healthy": running and self.probe(),
            "url": self.url,
            "pid": state["pid"] if state else None,
            "log": str(self.log_path),
        }

    def start(self) -> dict[str, Any]:
        """Start unless already healthy (idempotent); wait until the health check passes or raise StackError."""
        current = self.status()
        if current["healthy"]:
            return current
        self._clear_previous()
        if self.port is not None and port_in_use(self.port):
            hint = f"stop it or set {self.port_setting} to a free port" if self.port_setting else "stop it"
            raise StackError(f"{self.name}: something else already listens on 127.0.0.1:{self.port}; {hint}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists():  # keep one previous log; the probe reads only this start's lines
            os.replace(self.log_path, self.log_path.with_suffix(".log.1"))
        # A new session detaches the service from the terminal and lets stop() signal its whole group; the child
        # keeps its own copy of the log descriptor, so ours closes as soon as it is started.
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **self.env},
                cwd=self.cwd,
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StackError(
                    f"{self.name} exited with code {process.returncode}; see {self.log_path}:\n{self.tail_log()}"
                )
            if self.probe():
                record = {
                    "pid": process.pid,
                    "start_ticks": process_start_ticks(process.pid),
                    "url": self.url,
                    "started": time.time(),
                    **self.state,
                }
                write_private_json(self.state_path, record)  # may hold generated credentials
                return self.status()
            time.sleep(0.3)
        self._kill(process.pid)
        raise StackError(
            f"{self.name} did not become healthy at {self.url} within {self.startup_timeout:.0f}s; see {self.log_path}"
        )

    def _clear_previous(self) -> None:
        """Stop what a previous start left: a live but unhealthy process, or the survivors of a dead leader's group."""
        recorded = self._recorded()
        if recorded is not None and _ours_to_stop(recorded):
            self._kill(int(recorded["pid"]))
        self.state_path.unlink(missing_ok=True)

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the service's process group (TERM, then KILL after ``timeout``); True if it was running."""
        recorded = self._recorded()
        self.state_path.unlink(missing_ok=True)
        if recorded is None:
            return False
        was_running = state_process_alive(recorded)
        if _ours_to_stop(recorded):
            self._kill(int(recorded["pid"]), timeout)
        return was_running

    @staticmethod
    def _kill(pgid: int, timeout: float = 20.0) -> None:
        """TERM the process group, then KILL what is left of it."""
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (pid_alive(pgid) or group_alive(pgid)):
            time.sleep(0.1)
        if group_alive(pgid):
            with contextlib.suppress(ProcessLookupError):  # it ended between the check and the signal
                os.killpg(pgid, signal.SIGKILL)

    def tail_log(self, lines: int = 20) -> str:
        """Last lines of this start's log, for error messages and log-based probes."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
