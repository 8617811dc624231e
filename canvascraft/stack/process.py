"""A long-running local service: start detached, health-check, record pid and state, stop cleanly."""

from __future__ import annotations

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


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (for tests and ad-hoc stacks)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


@dataclass
class ManagedService:
    """A service of the local stack; state lives in ``<home>/stack/<name>.json``, logs in ``<home>/logs``."""

    name: str
    home: Path
    command: list[str]
    url: str
    health: Callable[[], bool]
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
        """The service's combined stdout/stderr."""
        return self.home / "logs" / f"{self.name}.log"

    def read_state(self) -> dict[str, Any] | None:
        """The recorded state, or None when the service was never started or was stopped."""
        try:
            return json.loads(self.state_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def status(self) -> dict[str, Any]:
        """``{"name", "running", "healthy", "url", "pid", "log"}``."""
        state = self.read_state()
        running = bool(state) and pid_alive(int(state["pid"]))
        return {
            "name": self.name,
            "running": running,
            "healthy": running and self.health(),
            "url": self.url,
            "pid": state["pid"] if state else None,
            "log": str(self.log_path),
        }

    def start(self) -> dict[str, Any]:
        """Start unless already healthy (idempotent); wait until the health check passes or raise StackError."""
        current = self.status()
        if current["healthy"]:
            return current
        if current["running"]:
            self.stop()
        if self.health():
            raise StackError(
                f"{self.name}: something else already answers at {self.url}; stop it or choose another port "
                f"(CANVASCRAFT_{self.name.upper().replace('-', '_')}_PORT)"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists():  # keep one previous log; health checks read only this start's lines
            os.replace(self.log_path, self.log_path.with_suffix(".log.1"))
        log = open(self.log_path, "ab")
        # A new session detaches the service from the terminal and lets stop() signal its whole group.
        process = subprocess.Popen(
            self.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **self.env},
            cwd=self.cwd,
        )
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StackError(f"{self.name} exited with code {process.returncode}; see {self.log_path}:\n{self.tail_log()}")
            if self.health():
                record = {"pid": process.pid, "url": self.url, "started": time.time(), **self.state}
                tmp = self.state_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(record, indent=1))
                os.chmod(tmp, 0o600)  # may hold generated credentials
                os.replace(tmp, self.state_path)
                return self.status()
            time.sleep(0.3)
        self._kill(process.pid)
        raise StackError(f"{self.name} did not become healthy at {self.url} within {self.startup_timeout:.0f}s; see {self.log_path}")

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the service's process group (TERM, then KILL after ``timeout``); True if it was running."""
        state = self.read_state()
        self.state_path.unlink(missing_ok=True)
        if not state or not pid_alive(int(state["pid"])):
            return False
        self._kill(int(state["pid"]), timeout)
        return True

    @staticmethod
    def _kill(pid: int, timeout: float = 20.0) -> None:
        """TERM the process group, then KILL what is left."""
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.1)
        if pid_alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def tail_log(self, lines: int = 20) -> str:
        """Last lines of the log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
