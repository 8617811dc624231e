"""Stage timings of a flow run, read from Prefect's own task runs (no clock kept by the flow).

Every task of the train flow belongs to one stage; a stage's wall time is the span from its first task run's start
to its last task run's end. On Ray a stage is a subflow, recorded in the train flow run as one task run named
after the stage's flow (``preprocess-0``), so the same names cover both runners. Task-run states reach the API
through Prefect's event pipeline, so a hook that reads them right after the run may see a few still running:
:func:`read_stage_timings` reads again until every task run has ended or ``wait`` seconds passed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun
from prefect.client.schemas.sorting import TaskRunSort

# task name -> stage of the train flow, in stage order (report-* tasks only render results: no stage)
TRAIN_STAGE_TASKS: dict[str, tuple[str, ...]] = {
    "ingest": ("ingest", "report-ingest"),
    "preprocess": ("preprocess-lookup", "preprocess-plan", "preprocess-shard", "preprocess-assemble", "preprocess"),
    "features": ("palettes-plan", "palette-chunk", "materialize-features", "palettes"),
    "training_set": ("training-set",),
    "tune": ("start-tracking", "tune"),
    "evaluate": ("fid-reference-plan", "fid-reference-chunk", "fid-reference", "evaluate"),
    "publish": ("publish",),
}
_BY_TASK = {name: stage for stage, names in TRAIN_STAGE_TASKS.items() for name in names}


def stage_of(task_run_name: str) -> str | None:
    """The stage of a task run named ``<task name>-<suffix>`` (Prefect's default names and the mapped ones)."""
    parts = task_run_name.split("-")
    for end in range(len(parts), 0, -1):  # the longest task name that prefixes the run's name
        stage = _BY_TASK.get("-".join(parts[:end]))
        if stage is not None:
            return stage
    return None


def stage_durations(spans: Iterable[tuple[str, datetime, datetime]]) -> dict[str, float]:
    """Seconds per stage, in stage order, from ``(task run name, start, end)`` spans (first start to last end)."""
    bounds: dict[str, tuple[datetime, datetime]] = {}
    for name, start, end in spans:
        stage = stage_of(name)
        if stage is None:
            continue
        first, last = bounds.get(stage, (start, end))
        bounds[stage] = (min(first, start), max(last, end))
    return {s: (bounds[s][1] - bounds[s][0]).total_seconds() for s in TRAIN_STAGE_TASKS if s in bounds}


_PAGE = 200  # the API answers at most PREFECT_API_DEFAULT_LIMIT (200) rows; a large dataset maps more pieces


def _task_runs(flow_run_id: UUID | str) -> list[TaskRun]:
    """Every task run of one flow run, page by page."""
    flow_runs = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(str(flow_run_id))]))
    runs: list[TaskRun] = []
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_task_runs(
                flow_run_filter=flow_runs, sort=TaskRunSort.EXPECTED_START_TIME_ASC, limit=_PAGE, offset=len(runs)
            )
            runs += page
            if len(page) < _PAGE:
                return runs


def read_stage_timings(flow_run_id: UUID | str, wait: float = 10.0, poll: float = 0.25) -> dict[str, float]:
    """Seconds per stage of a flow run from its task runs (those still running after ``wait`` are left out)."""
    deadline = time.monotonic() + wait
    runs = _task_runs(flow_run_id)
    while any(r.start_time and not r.end_time for r in runs) and time.monotonic() < deadline:
        time.sleep(poll)
        runs = _task_runs(flow_run_id)
    return stage_durations((r.name, r.start_time, r.end_time) for r in runs if r.start_time and r.end_time)
