"""Prefect's floor for bench/orchestration.py: flows with no CanvasCraft code, shaped like the train flow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def floor_flows() -> dict[str, Callable[[], Any]]:
    """Flows with no CanvasCraft code, shaped like the train flow (10 tasks; its 3 parallel stages as subflows of 4
    mapped tasks on a 2-thread runner, as tasks/task_runners.py runs them), beside the variants that tell the costs
    apart: heartbeats off (PREFECT_FLOWS_HEARTBEAT_FREQUENCY unset), the stages' tasks mapped in the flow itself,
    the subflows without heartbeats of their own."""
    from prefect import flow, task
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.task_runners import ThreadPoolTaskRunner

    @task(name="noop")
    def noop(i: int) -> int:
        return i

    @flow(name="bench-stage")
    def stage(i: int) -> int:
        return sum(noop.map(range(4)).result())

    def run_stage(i: int, own_heartbeat: bool) -> int:
        subflow = stage.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))
        if own_heartbeat:
            return subflow(i)
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            return subflow(i)

    @flow(name="bench-empty")
    def empty(tasks: int, stages: str) -> int:
        total = sum(noop(i) for i in range(tasks))
        for i in range(3 if stages != "none" else 0):
            total += (
                sum(noop.map(range(4)).result())
                if stages == "mapped"
                else run_stage(i, own_heartbeat=stages == "subflows")
            )
        return total

    def no_heartbeat(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
                return fn()

        return run

    return {
        "0 tasks": lambda: empty(0, "none"),
        "0 tasks, heartbeats off": no_heartbeat(lambda: empty(0, "none")),
        "10 tasks": lambda: empty(10, "none"),
        "10 tasks + 3 stage subflows (train flow's shape)": lambda: empty(10, "subflows"),
        "10 tasks + the stages' tasks mapped in the flow": lambda: empty(10, "mapped"),
        "10 tasks + 3 stage subflows without their own heartbeat": lambda: empty(10, "subflows-no-heartbeat"),
        "10 tasks + 3 stage subflows, heartbeats off": no_heartbeat(lambda: empty(10, "subflows")),
    }
