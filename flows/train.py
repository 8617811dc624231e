"""The ``train`` flow: ingest -> preprocess (brushes) -> features (Feast) -> Ray Tune -> FID -> MLflow registry."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from prefect import flow

from canvascraft.reports import classifier_summary
from flows.stages import fid_reference_stage, palettes_stage, preprocess_stage
from tasks.evaluate import evaluate_model
from tasks.features import training_set
from tasks.ingest import ingest_snapshot
from tasks.observability import observe_run
from tasks.publish import publish_model
from tasks.reporting import publish_ingest_report, start_progress
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
) -> dict[str, Any]:
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
    progress = start_progress(pipeline.name)  # progress artifact + stage timings for the metrics push
    report = ingest_snapshot(pipeline)
    progress.done("ingest")
    publish_ingest_report(report, pipeline.name)
    shards = run_stage(preprocess_stage, report, pipeline)  # one task run per piece: threads, or Ray when configured
    progress.done("preprocess")
    print(
        f"dataset version {report.dataset_version}: {report.valid} valid, {len(report.quarantined)} quarantined, "
        f"{report.downloaded} downloaded; {shards.count} images preprocessed to {shards.shape} ({shards.reuse}): "
        f"{len(shards.pieces)} pieces, {shards.pieces_computed} computed"
    )
    features = run_stage(palettes_stage, report, pipeline)  # one task run per chunk: threads, or Ray when configured
    progress.done("features")
    selection = training_set(report, pipeline)
    progress.done("training_set")
    print(
        f"features: {features['rows_computed']} rows computed, {features['rows_written']} written, "
        f"{features['rows_materialized']} materialized; training set keeps {selection['kept']} of "
        f"{selection['rows']} images"
    )
    result: dict[str, Any] = {
        "pipeline": pipeline.name,
        "dataset_version": report.dataset_version,
        "valid": report.valid,
        "quarantined": len(report.quarantined),
        "shards": shards.path,
        "images": shards.count,
        "features": features,
        "training_set": {k: v for k, v in selection.items() if k != "kept_image_ids"},
    }
    if pipeline.trainer is None:
        return result
    parent_run_id = start_tracking(pipeline, report, incoming_dataset_version)
    search = tune_trainer(pipeline, shards, selection, report, parent_run_id)
    progress.done("tune")
    best = search["best_metrics"]
    print(
        f"tune: {len(search['trials'])} trials, best {pipeline.tuner.metric}={best.get(pipeline.tuner.metric)} "
        f"at {best.get('images_per_sec', 0):.0f} images/s; checkpoint {search['best_checkpoint']}"
    )
    run_stage(fid_reference_stage, pipeline, shards, selection["kept_image_ids"])  # reference features per chunk
    evaluation = evaluate_model(pipeline, search["best_checkpoint"], shards, selection, parent_run_id)
    progress.done("evaluate")
    score = evaluation["score"]
    print(
        f"evaluate: FID {score['fid']:.3f}, KID {score['kid_mean']} (N={score['n']}, dims={score['dims']}, "
        f"resize={score['resize']}, weights {score['weights_sha256'][:12]})"
        + (f"; classifier score {classifier_summary(score)}" if score.get("classifier") else "")
    )
    published = publish_model(
        pipeline,
        search["best_checkpoint"],
        evaluation,
        report,
        shards,
        features,
        parent_run_id,
        selection,
        incoming_dataset_version,
    )
    progress.done("publish")
    if published.get("published"):
        print(
            f"publish: {published['model']} v{published['version']} aliases {published['aliases']}: "
            f"{published['summary']}"
        )
    print(
        f"samples of this run: {evaluation['grid']} (MLflow run {parent_run_id}, artifact samples/"
        f"{Path(evaluation['grid']).name}); FID {score['fid']:.3f}"
        + (f", classifier score {classifier_summary(score)}" if score.get("classifier") else "")
    )
    return {**result, "mlflow_run_id": parent_run_id, "search": search, "evaluation": evaluation, "publish": published}


if __name__ == "__main__":
    train(sys.argv[1] if len(sys.argv) > 1 else "pipelines/digits-quick.yaml")
