"""Tasks that publish human-readable results as Prefect artifacts."""

from __future__ import annotations

import contextvars
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect import task
from prefect.artifacts import (
    Artifact,
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext

from canvascraft.ingest import IngestReport
from canvascraft.reports import ingest_markdown, run_summary_markdown
from canvascraft.settings import Settings, get_settings


@task(name="report-ingest", cache_policy=NO_CACHE)
def publish_ingest_report(report: IngestReport, pipeline: str) -> str:
    """A markdown artifact with the ingest counts and every quarantined object's reason."""
    return str(
        create_markdown_artifact(
            key=artifact_key(pipeline, "ingest"),
            markdown=ingest_markdown(report),
            description=f"Ingest of dataset version {report.dataset_version}",
        )
    )


# Share of the run each train stage completes (seed 004's progress bands: data 0-20 %, training 20-80 %, publish
# 80-100 %); a stage the run skips simply never moves the bar, and the completion hook sets 100 %.
TRAIN_STAGES: dict[str, float] = {
    "ingest": 10.0,
    "preprocess": 18.0,
    "features": 25.0,
    "training_set": 30.0,
    "tune": 80.0,
    "evaluate": 92.0,
    "publish": 100.0,
}
_ACTIVE: dict[str, RunProgress] = {}


def artifact_key(pipeline: str, suffix: str) -> str:
    """A valid artifact key (lowercase letters, digits, dashes) for ``<pipeline>-<suffix>``."""
    return re.sub(r"[^a-z0-9-]", "-", f"{pipeline}-{suffix}".lower())


class RunProgress:
    """A Prefect progress artifact moved through the stages; also records each stage's wall time.

    The API calls go through one background thread, in order, so a stage boundary never waits for the server
    (bench/orchestration.py: 8 synchronous updates cost ~0.15 s of a 10 s run); :meth:`finish` waits for them.
    """

    def __init__(self, pipeline: str, stages: dict[str, float] | None = None) -> None:
        self.pipeline = pipeline
        self.stages = dict(stages or TRAIN_STAGES)
        self.durations: dict[str, float] = {}
        self.started = self._mark = time.monotonic()
        self.progress = 0.0
        self.artifact_id: UUID | None = None
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="canvascraft-progress")
        self._submit(self._create)

    def _submit(self, fn: Any, *args: Any) -> None:
        """Queue ``fn`` on the sender thread with this run's context (Prefect's settings and client live there)."""
        try:
            self._sender.submit(contextvars.copy_context().run, fn, *args)
        except RuntimeError:  # already finished: late updates are dropped
            pass

    def _create(self) -> None:
        """Create the artifact at 0 % (runs on the sender thread)."""
        try:
            self.artifact_id = cast(
                UUID,
                create_progress_artifact(  # sync call: a UUID, not a coroutine
                    progress=0.0,
                    key=artifact_key(self.pipeline, "progress"),
                    description=f"Progress of {self.pipeline}: started",
                ),
            )
        except Exception:  # noqa: BLE001 - progress display is best effort; the stage timings still count
            self.artifact_id = None

    def done(self, stage: str) -> float:
        """Mark ``stage`` finished: record its wall time since the previous mark and move the bar; return percent."""
        now = time.monotonic()
        self.durations[stage] = self.durations.get(stage, 0.0) + (now - self._mark)
        self._mark = now
        self.progress = max(self.progress, self.stages.get(stage, self.progress))
        self._update(f"{stage} done")
        return self.progress

    def finish(self, ok: bool) -> None:
        """100 % on success; on failure keep the bar where the run stopped and say so."""
        if ok:
            self.progress = 100.0
        last = next(reversed(self.durations), "start")
        self._update("finished" if ok else f"failed after {last}")
        self._sender.shutdown(wait=True)  # the artifact shows the final state before the run's hooks return

    def _update(self, note: str) -> None:
        """Queue the current percentage for the artifact."""
        self._submit(self._send, self.progress, note)

    def _send(self, progress: float, note: str) -> None:
        """Push one percentage (runs on the sender thread; ignored when the artifact could not be created)."""
        if self.artifact_id is not None:
            try:
                update_progress_artifact(
                    self.artifact_id, progress=progress, description=f"Progress of {self.pipeline}: {note}"
                )
            except Exception:  # noqa: BLE001 - best effort, as above
                pass


def start_progress(pipeline: str, stages: dict[str, float] | None = None) -> RunProgress:
    """Create the run's progress artifact (``<pipeline>-progress``) and remember it for the run's hooks."""
    progress = RunProgress(pipeline, stages)
    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None:
        _ACTIVE[str(context.flow_run.id)] = progress
    return progress


def pop_progress(flow_run_id: str | UUID) -> RunProgress | None:
    """The progress of a flow run started with :func:`start_progress` (removed: hooks call this once)."""
    return _ACTIVE.pop(str(flow_run_id), None)


def summary_links(result: dict[str, Any], settings: Settings | None = None) -> dict[str, str | None]:
    """URLs of the MLflow run, the registered version (MLflow server only) and the latest drift report."""
    settings = settings or get_settings()
    uri = settings.resolved_mlflow_tracking_uri.rstrip("/")
    links: dict[str, str | None] = {"mlflow_run": None, "model_version": None, "drift_report": None}
    run_id = result.get("mlflow_run_id")
    if uri.startswith(("http://", "https://")):
        if run_id:
            try:
                from mlflow import MlflowClient

                experiment = MlflowClient(tracking_uri=uri).get_run(run_id).info.experiment_id
                links["mlflow_run"] = f"{uri}/#/experiments/{experiment}/runs/{run_id}"
            except Exception:  # noqa: BLE001 - a link is a convenience; the id is still shown
                links["mlflow_run"] = None
        published = result.get("publish") or {}
        if published.get("published"):
            links["model_version"] = f"{uri}/#/models/{published['model']}/versions/{published['version']}"
    pipeline = str(result.get("pipeline", ""))
    drift_link = cast("Artifact | None", Artifact.get(artifact_key(pipeline, "drift-report"))) if pipeline else None
    target = re.search(r"\]\((.+)\)\s*$", str(drift_link.data or "")) if drift_link is not None else None
    if target:  # a link artifact's data is "[text](url)"
        links["drift_report"] = target.group(1)
    else:
        reports = (
            sorted((settings.home / "reports" / "drift" / pipeline).glob("*.html"), key=lambda p: p.stat().st_mtime)
            if pipeline
            else []
        )
        links["drift_report"] = Path(reports[-1]).as_uri() if reports else None
    return links


def publish_run_summary(result: dict[str, Any], stages: dict[str, float] | None = None) -> str:
    """Markdown artifact ``<pipeline>-summary`` linking the MLflow run, the registered version and the drift report."""
    markdown = run_summary_markdown(result, summary_links(result), stages)
    return str(
        create_markdown_artifact(
            key=artifact_key(str(result.get("pipeline", "run")), "summary"),
            markdown=markdown,
            description="Run summary",
        )
    )
