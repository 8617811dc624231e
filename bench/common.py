"""Shared bench machinery: isolated environment, the loopback S3 server, timing statistics, the report."""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def isolate_environment(root: Path) -> None:
    """Point Prefect, CanvasCraft and Feast at a temp folder before any of them is imported."""
    os.environ["PREFECT_HOME"] = str(root / "prefect")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    os.environ["CANVASCRAFT_HOME"] = str(root / "home")
    os.environ["CANVASCRAFT_FEAST_REPO_PATH"] = str(REPO / "feature_repo")
    os.environ["RAY_DEDUP_LOGS"] = "0"
    os.environ.setdefault("TQDM_DISABLE", "1")
    for var in (
        "CANVASCRAFT_S3_ENDPOINT_URL",
        "CANVASCRAFT_MLFLOW_TRACKING_URI",
        "CANVASCRAFT_RAY_ADDRESS",
        "CANVASCRAFT_FEAST_DATA",
        "PREFECT_API_URL",
    ):
        os.environ.pop(var, None)


class S3Server:
    """rclone ``serve s3`` on a free loopback port (as tests/conftest.py), exported to boto3 through env vars so
    every CanvasCraft home the bench creates talks to the same server."""

    def __init__(self) -> None:
        from canvascraft.settings import get_settings
        from canvascraft.stack.process import free_port
        from canvascraft.stack.s3_server import embedded_credentials, s3_service

        os.environ["CANVASCRAFT_S3_PORT"] = str(free_port())
        settings = get_settings()
        self.service = s3_service(settings)
        self.service.start()
        creds = embedded_credentials(settings.home)
        os.environ["CANVASCRAFT_S3_ENDPOINT_URL"] = f"http://127.0.0.1:{settings.s3_port}"
        os.environ["AWS_ACCESS_KEY_ID"] = creds["access_key_id"]
        os.environ["AWS_SECRET_ACCESS_KEY"] = creds["secret_access_key"]

    def client(self) -> Any:
        from canvascraft.settings import get_settings
        from canvascraft.storage import make_s3_client

        return make_s3_client(get_settings())

    def stop(self) -> None:
        self.service.stop()


def fresh_home(root: Path, name: str) -> Path:
    """A new CANVASCRAFT_HOME (empty caches, Feast data, MLflow db) for one measured run."""
    home = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
    os.environ["CANVASCRAFT_HOME"] = str(home)
    return home


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


@dataclass
class Sample:
    """Repeated measurements of one quantity."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def fmt(self, digits: int = 1) -> str:
        if not self.values:
            return "n/a"
        lo, hi = min(self.values), max(self.values)
        return f"{self.median:,.{digits}f} ({lo:,.{digits}f}–{hi:,.{digits}f}, n={len(self.values)})"


@dataclass
class Row:
    """One figure: CanvasCraft vs baseline, the ratio and its target."""

    figure: str
    size: str
    unit: str
    canvascraft: Sample
    baseline: Sample | None
    baseline_name: str
    ratio: float | None = None
    ratio_spread: tuple[float, float] | None = None
    ratio_label: str = "CanvasCraft / baseline"
    target: str = ""
    note: str = ""
    digits: int = 1

    def ratio_text(self) -> str:
        if self.ratio is None:
            return ""
        if self.target.endswith("%"):
            spread = (
                f" ({100 * self.ratio_spread[0]:.1f}%–{100 * self.ratio_spread[1]:.1f}%)" if self.ratio_spread else ""
            )
            return f"{100 * self.ratio:.1f}%{spread}"
        spread = f" ({self.ratio_spread[0]:.3f}–{self.ratio_spread[1]:.3f})" if self.ratio_spread else ""
        return f"{self.ratio:.3f}{spread}"

    def verdict(self) -> str:
        if self.ratio is None or not self.target:
            return ""
        op, value = self.target.split()[0], float(self.target.split()[1].rstrip("%"))
        shown = self.ratio * (100 if self.target.endswith("%") else 1)
        ok = shown >= value if op == ">=" else shown <= value
        return "met" if ok else "**missed**"


def paired_ratio(a: list[float], b: list[float]) -> tuple[float, tuple[float, float]]:
    """Median and spread of per-repeat ratios a_i / b_i (interleaved repeats share the machine's load)."""
    ratios = [x / y for x, y in zip(a, b, strict=True) if y]
    return statistics.median(ratios), (min(ratios), max(ratios))


@dataclass
class Report:
    """Accumulates sections and rewrites docs/benchmarks.md after each one (incremental delivery)."""

    path: Path
    command: str
    profile: str
    machine: dict[str, Any]
    sections: list[tuple[str, list[Row], str]] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def add(self, title: str, rows: list[Row], text: str = "") -> None:
        self.sections.append((title, rows, text))
        self.write()

    def write(self, finished: bool = False) -> None:
        m = self.machine
        lines = [
            "# Benchmarks",
            "",
            "Generated by `bench/` (`make bench`); do not edit by hand. Every figure is the CanvasCraft number next to",
            "a bare-library baseline measured **in the same run on the same machine**, as the median of repeated",
            "runs with (min–max, n). The machine is shared, so absolute numbers move 3-7x with load; the ratios are",
            "what to compare between runs.",
            "",
            "## Machine and command",
            "",
            f"- CPU: {m['cpu']} ({m['cores']} cores visible, torch intra-op threads {m['torch_threads']})",
            f"- RAM: {m['ram']}",
            f"- load average (1/5/15 min) at start: {m['load_start']}"
            + (f"; at end: {m.get('load_end')}" if m.get("load_end") else ""),
            f"- OS / Python: {m['os']} / Python {m['python']}; torch {m['torch']}",
            f"- command: `{self.command}` (profile `{self.profile}`)",
            f"- started: {m['date']}; wall time of the bench: "
            + (
                f"{time.perf_counter() - self.started:.0f} s"
                if finished
                else f"{time.perf_counter() - self.started:.0f} s so far (incomplete: still running or interrupted)"
            ),
            "",
        ]
        summary = [r for _, rows, _ in self.sections for r in rows if r.target]
        if summary:
            lines += [
                "## Ratios against targets",
                "",
                "| figure | size | ratio | target | verdict |",
                "|---|---|---:|---|---|",
            ]
            for r in summary:
                lines.append(
                    f"| {r.figure} | {r.size} | {r.ratio_text()} | {r.ratio_label} {r.target} | {r.verdict()} |"
                )
            lines.append("")
        for title, rows, text in self.sections:
            lines += [f"## {title}", ""]
            if rows:
                lines += [
                    "| figure | size | unit | CanvasCraft | baseline | ratio | target |",
                    "|---|---|---|---:|---:|---:|---|",
                ]
                for r in rows:
                    base = f"{r.baseline.fmt(r.digits)} ({r.baseline_name})" if r.baseline else r.baseline_name or "n/a"
                    ratio = r.ratio_text()
                    lines.append(
                        f"| {r.figure} | {r.size} | {r.unit} | {r.canvascraft.fmt(r.digits)} | {base} | "
                        f"{ratio} | {r.target} {r.verdict()} |"
                    )
                lines.append("")
                notes = [f"- {r.figure} ({r.size}): {r.note}" for r in rows if r.note]
                lines += notes + ([""] if notes else [])
            if text:
                lines += [text.strip(), ""]
        lines += self.extra
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(lines).rstrip() + "\n")


def machine_description() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    import torch

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram": ram,
        "load_start": load_average(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "os": platform.platform(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def load_average() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"
