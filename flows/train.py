"""The ``train`` flow: ingest from S3 -> preprocess (brushes) -> ... (later stages join here)."""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from tasks.features import materialize_features, training_set
from tasks.ingest import ingest_snapshot
from tasks.preprocess import preprocess_snapshot
from tasks.reporting import publish_ingest_report
from tasks.spec import resolve_spec


@flow(name="train", log_prints=True)
def train(spec: str | dict[str, Any] = "pipelines/digits-quick.yaml") -> dict[str, Any]:
    """Run the training pipeline described by ``spec`` (path, YAML text or mapping)."""
    pipeline = resolve_spec(spec)
    report = ingest_snapshot(pipeline)
    publish_ingest_report(report, pipeline.name)
    shards_state = preprocess_snapshot(report, pipeline, return_state=True)
    shards = shards_state.result()
    reuse = "cached" if shards_state.name == "Cached" else ("reused" if shards.reused else "computed")
    print(
        f"dataset version {report.dataset_version}: {report.valid} valid, {len(report.quarantined)} quarantined, "
        f"{report.downloaded} downloaded; {shards.count} images preprocessed to {shards.shape} "
        f"({reuse})"
    )
    features = materialize_features(report, pipeline)
    selection = training_set(report, pipeline)
    print(
        f"features: {features['rows_computed']} rows computed, {features['rows_written']} written, "
        f"{features['rows_materialized']} materialized; training set keeps {selection['kept']} of "
        f"{selection['rows']} images"
    )
    return {
        "pipeline": pipeline.name,
        "dataset_version": report.dataset_version,
        "valid": report.valid,
        "quarantined": len(report.quarantined),
        "shards": shards.path,
        "images": shards.count,
        "features": features,
        "training_set": {k: v for k, v in selection.items() if k != "kept_image_ids"},
    }


if __name__ == "__main__":
    train(sys.argv[1] if len(sys.argv) > 1 else "pipelines/digits-quick.yaml")
