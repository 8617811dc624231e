"""The ``train`` flow: ingest -> preprocess (brushes) -> features (Feast) -> Ray Tune -> FID -> MLflow registry."""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from canvascraft.outcomes import TrainRunResult
from flows.stages import fid_reference_stage, palettes_stage, preprocess_stage
from tasks.evaluate import evaluate_model
from tasks.features import training_set
from tasks.ingest import ingest_snapshot
from tasks.observability import observe_run
from tasks.publish import publish_model
from tasks.reporting import publish_ingest_report, summarize_data, summarize_run
from tasks.spec import resolve_spec
from tasks.task_runners import SettingsThreadPoolTaskRunner, run_stage
from tasks.train import start_tracking, tune_trainer


# the stages' pieces run on a thread pool the settings size when a run starts, or on Ray: tasks/task_runners.py
# (type: ignore: Prefect types the decorator's runner as an invariant TaskRunner[PrefectFuture])
@flow(
    name="train",
    log_prints=True,
    task_runner=SettingsThreadPoolTaskRunner(),  # type: ignore[arg-type]
    on_completion=[observe_run],
    on_failure=[observe_run],
    on_crashed=[observe_run],
)
def train(
    spec: str | dict[str, Any] = "pipelines/digits-quick.yaml",
    extra_sources: list[str] | None = None,
    incoming_dataset_version: str | None = None,
) -> TrainRunResult:
    """Train, evaluate and publish the pipeline described by ``spec``.

    Args:
        spec: The pipeline spec: a path relative to the project (e.g. pipelines/digits-quick.yaml), YAML text or a
            mapping. It names the data, brushes, palettes, trainer, tuner, evaluator and publish target.
        extra_sources: More s3://bucket/prefix sources to ingest with the spec's data. Only prefixes under the
            spec's drift.incoming are allowed (a drift retrain passes the incoming prefix here).
        incoming_dataset_version: The incoming dataset version this run retrains on (set by the drift trigger);
            recorded on the MLflow run so later drift checks of the same data stay calm.
    """
    pipeline = resolve_spec(spec, extra_sources)  # drift retrains add the incoming prefix to the spec's sources
    report = ingest_snapshot(pipeline)
    publish_ingest_report(report, pipeline.name)
    shards = run_stage(preprocess_stage, report, pipeline)  # one task run per piece: threads, or Ray when configured
    features = run_stage(palettes_stage, report, pipeline)  # one task run per chunk: threads, or Ray when configured
    selection = training_set(report, pipeline)
    data = summarize_data(pipeline, report, shards, features, selection)
    if pipeline.trainer is None:
        return data
    parent_run_id = start_tracking(pipeline, report, incoming_dataset_version)
    search = tune_trainer(pipeline, shards, selection, report, parent_run_id)
    run_stage(fid_reference_stage, pipeline, shards, selection.kept_image_ids)  # reference features per chunk
    evaluation = evaluate_model(pipeline, search.best_checkpoint, shards, selection, parent_run_id)
    published = publish_model(
        pipeline,
        search.best_checkpoint,
        evaluation,
        report,
        shards,
        features,
        parent_run_id,
        selection,
        incoming_dataset_version,
    )
    return summarize_run(data, pipeline, parent_run_id, search, evaluation, published)


if __name__ == "__main__":
    train(sys.argv[1] if len(sys.argv) > 1 else "pipelines/digits-quick.yaml")
