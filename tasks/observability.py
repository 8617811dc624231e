"""Run observability for flows: push Prometheus metrics, summarise, notify; as a function and as state hooks.

``observe_run`` is a Prefect flow state hook: give it as ``on_completion``, ``on_failure`` and ``on_crashed`` of a
flow. At the end of a run it pushes the run's metrics to the Pushgateway (grouping key job=canvascraft_<flow>,
pipeline=<name>) with the stage timings read from the run's task runs (tasks/stage_timings.py), publishes the run
summary (train) and sends the notifications (flow failure, model promoted, rollback, drift detected). Every step
is best effort: an outage of the Pushgateway, the alert channel or the API is logged and never changes the run's
state.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from canvascraft.errors import SpecError
from canvascraft.metrics import RunMetrics, train_result_metrics
from canvascraft.outcomes import TrainRunResult
from canvascraft.settings import get_settings
from canvascraft.spec import NotificationsSpec, read_spec
from tasks.notify import (
    notify_drift_detected,
    notify_flow_failure,
    notify_model_promoted,
    notify_rollback,
)
from tasks.reporting import publish_run_summary
from tasks.run_log import run_logger
from tasks.stage_timings import read_stage_timings


def push_run_metrics(
    flow: str,
    pipeline: str,
    result: TrainRunResult | Mapping[str, Any] | None = None,
    *,
    ok: bool = True,
    stages: Mapping[str, float] | None = None,
    duration_seconds: float | None = None,
    metric: str = "loss",
    gateway: str | None = None,
) -> bool:
    """Build the run's metrics from its result and push them; False (logged) when the Pushgateway is unreachable."""
    log = run_logger(__name__)
    try:
        settings = get_settings()
        metrics = RunMetrics(flow, pipeline)
        if isinstance(result, TrainRunResult):
            train_result_metrics(metrics, result, metric)
        elif result:
            if flow == "drift_check":
                metrics.drift(
                    result["drift_share"], bool(result.get("dataset_drift")), len(result.get("drifted_columns") or [])
                )
            elif flow == "rollback":
                metrics.promotion("rolled_back", result.get("champion"))
        metrics.stage_durations(dict(stages or {}))
        metrics.finished(ok, duration_seconds)
        target = gateway or settings.resolved_pushgateway_url
        # A success replaces the group (latest run); a failure only adds its series, keeping the last good scores.
        pushed = metrics.push(target, replace=ok, timeout=settings.pushgateway_timeout)
    except Exception as exc:  # noqa: BLE001 - metrics never fail a flow
        log.warning("metrics of %s/%s not pushed: %s: %s", flow, pipeline, type(exc).__name__, exc)
        return False
    if pushed:
        log.info("metrics of %s pushed to %s (%d series)", metrics.job, target, len(metrics.names))
    else:
        log.warning("Pushgateway %s unreachable: metrics of %s/%s dropped; the run goes on", target, flow, pipeline)
    return pushed


def raw_spec(parameters: Mapping[str, Any]) -> Mapping[str, Any]:
    """The run's ``spec`` parameter as an unvalidated mapping ({} when absent or unreadable: a run a bad spec
    failed still gets its metrics and alerts)."""
    spec = parameters.get("spec")
    if spec is None:
        return {}
    try:
        document, _ = read_spec(spec)
    except SpecError:
        return {}
    return document if isinstance(document, Mapping) else {}


def pipeline_name(spec: Mapping[str, Any], parameters: Mapping[str, Any], result: Any = None) -> str:
    """The pipeline a run was for: from its result, else its spec's name, else the registered model (rollback)."""
    if isinstance(result, TrainRunResult):
        return result.pipeline
    if isinstance(result, Mapping) and result.get("pipeline"):
        return str(result["pipeline"])
    if spec.get("name"):
        return str(spec["name"])
    if parameters.get("registered_model"):
        return str(parameters["registered_model"])
    return "unknown"


def notifications_config(spec: Mapping[str, Any]) -> NotificationsSpec | None:
    """The spec's ``notifications`` section (validated on its own, so a run failed by a bad spec still alerts)."""
    section = spec.get("notifications")
    if section is None:
        return None
    try:
        return NotificationsSpec.model_validate(section)
    except ValidationError as exc:
        run_logger(__name__).warning("spec notifications section ignored: %s", exc)
        return None


def _duration(flow_run: Any) -> float | None:
    """Seconds since the flow run started (None when the start time is unknown)."""
    start = getattr(flow_run, "start_time", None)
    if start is None:
        return None
    return max(0.0, (datetime.now(UTC) - start).total_seconds())


def run_result(state: Any) -> TrainRunResult | Mapping[str, Any] | None:
    """A completed run's result as the flow returned it (a train run's typed result, another flow's mapping)."""
    if not state.is_completed():
        return None
    try:
        result = state.result(raise_on_failure=False)
    except Exception as exc:  # noqa: BLE001 - e.g. a result that was not kept in memory
        run_logger(__name__).warning("run result unavailable to the observability hook: %s", exc)
        return None
    return result if isinstance(result, (TrainRunResult, Mapping)) else None


def observe_run(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow state hook (on_completion / on_failure / on_crashed): metrics, summary, notifications."""
    log = run_logger(__name__)
    ok = bool(state.is_completed())
    result = run_result(state)
    parameters = flow_run.parameters or {}
    spec = raw_spec(parameters)  # read once: name and notification routing both come from it
    pipeline = pipeline_name(spec, parameters, result)
    config = notifications_config(spec)
    stages: dict[str, float] = {}
    try:
        stages = read_stage_timings(flow_run.id)
    except Exception as exc:  # noqa: BLE001 - timings are best effort; the run's other metrics still count
        log.warning("stage timings unavailable: %s: %s", type(exc).__name__, exc)
    push_run_metrics(flow.name, pipeline, result, ok=ok, stages=stages, duration_seconds=_duration(flow_run))
    if isinstance(result, TrainRunResult):
        _best_effort(log, "run summary", publish_run_summary, result, stages)
    if not ok:
        _best_effort(
            log,
            "failure notification",
            notify_flow_failure,
            flow.name,
            str(flow_run.name),
            str(flow_run.id),
            str(state.message or state.name),
            pipeline,
            config,
        )
        return
    if isinstance(result, TrainRunResult):
        published = result.publish
        if published is not None and published.promoted:
            _best_effort(
                log,
                "promotion notification",
                notify_model_promoted,
                pipeline,
                published.notification(),
                result.mlflow_run_id,
                config,
            )
        return
    if not result:
        return
    if flow.name == "drift_check" and result.get("event_due"):
        _best_effort(log, "drift notification", notify_drift_detected, result, config)
    if flow.name == "rollback":
        model = str(parameters.get("registered_model", pipeline))
        _best_effort(log, "rollback notification", notify_rollback, model, result, config)


def _best_effort(log: Any, what: str, fn: Any, *args: Any) -> None:
    """Call ``fn``; log (do not raise) whatever goes wrong."""
    started = time.monotonic()
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - observability never changes a run's outcome
        log.warning("%s failed after %.1fs: %s: %s", what, time.monotonic() - started, type(exc).__name__, exc)
