"""Tasks of the training stage: the MLflow parent run and the Ray Tune search."""

from __future__ import annotations

import threading
import time
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from canvascraft import tracking
from canvascraft.ingest import IngestReport
from canvascraft.outcomes import BestConfig, TrainingSelection, TuneOutcome
from canvascraft.preprocess import ShardSet
from canvascraft.settings import get_settings
from canvascraft.spec import PipelineSpec
from canvascraft.tuning.search import run_search, stop_hard
from canvascraft.tuning.trial_runs import log_trial_samples, trials_table
from tasks.reporting import artifact_key
from tasks.retry_policy import retry_on_io


@task(name="start-tracking", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_on_io, cache_policy=NO_CACHE)
def start_tracking(spec: PipelineSpec, report: IngestReport, incoming_dataset_version: str | None = None) -> str:
    """Create the MLflow parent run of this flow run (resolved spec, dataset versions, Prefect run id).

    A drift retrain records the incoming dataset version it answers (``tracking.RETRAIN_OF_TAG``): later drift
    checks of the same incoming data, on any worker, find it and stay calm.
    """
    tags = {
        "prefect.flow_run_id": str(flow_run.id or ""),
        "prefect.flow_run_name": str(flow_run.name or ""),
        "canvascraft.dataset_version": report.dataset_version,
    }
    if incoming_dataset_version:
        tags[tracking.RETRAIN_OF_TAG] = incoming_dataset_version
    return tracking.start_parent_run(get_settings(), spec, report.dataset_version, tags)


# After a cancel is acknowledged, the process gets this long to end on its own before the local Ray node and the
# process are stopped hard (otherwise Prefect's runner waits its 30 s grace, then SIGKILLs the group).
CANCEL_EXIT_DEADLINE_S = 10.0
_watching: list[threading.Thread] = []


def watch_for_cancel(deadline: float = CANCEL_EXIT_DEADLINE_S) -> None:
    """Once per process: when Prefect's runner has delivered a cancel intent, end the process within ``deadline``.

    Reads the intent from Prefect's control listener (``prefect._internal.control_listener``, the source the flow
    engine itself reads); it leaves the SIGTERM handler alone, which Prefect requires to acknowledge the cancel.
    """
    if _watching:
        return
    try:
        from prefect._internal.control_listener import get_intent
    except ImportError:  # another Prefect version: the runner's grace period still ends the run
        return

    def watch() -> None:
        while get_intent() != "cancel":
            time.sleep(0.5)
        time.sleep(deadline)
        stop_hard()

    thread = threading.Thread(target=watch, name="canvascraft-cancel-deadline", daemon=True)
    thread.start()
    _watching.append(thread)


@task(name="tune", cache_policy=NO_CACHE)
def tune_trainer(
    spec: PipelineSpec,
    shards: ShardSet,
    selection: TrainingSelection,
    report: IngestReport,
    parent_run_id: str,
    extra_config: dict[str, Any] | None = None,
) -> TuneOutcome:
    """Run (or resume) the Ray Tune search; log sample grids per trial; return the best checkpoint and config."""
    settings = get_settings()
    tracking.configure(settings)
    watch_for_cancel()
    result = run_search(
        spec,
        shards,
        selection.kept_ids_key,
        settings,
        parent_run_id=parent_run_id,
        dataset_version=report.dataset_version,
        extra_config=extra_config,
    )
    log_trial_samples(result, parent_run_id, n=16, seed=spec.seed)
    table = trials_table(result.trials, spec.tuner.metric)
    create_table_artifact(
        table=table, key=artifact_key(spec.name, "trials"), description=f"Ray Tune trials of {spec.name}"
    )
    best_metric = result.best_metrics.get(spec.tuner.metric)
    tracking.log_to_run(
        parent_run_id,
        metrics={
            f"best_{spec.tuner.metric}": float(best_metric) if best_metric is not None else float("nan"),
            "tune_wall_seconds": result.wall_seconds,
            "tune_overhead_seconds": result.tune_overhead_seconds,
        },
        params={"best_hp": result.best_config.get("hp", {})},
        tags={"tune_restored": str(result.restored)},
    )
    return TuneOutcome(
        best_checkpoint=result.best_checkpoint,
        best_config=BestConfig(
            trainer=result.best_config["trainer"],
            params=result.best_config["params"],
            hp=result.best_config.get("hp", {}),
        ),
        best_metrics={k: v for k, v in result.best_metrics.items() if isinstance(v, (int, float))},
        trials=table,
        wall_seconds=result.wall_seconds,
        tune_overhead_seconds=result.tune_overhead_seconds,
        restored=result.restored,
        device_note=result.plan.note if result.plan else "",
    )
