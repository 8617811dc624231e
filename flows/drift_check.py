"""The ``drift_check`` flow: incoming images -> palettes -> Evidently vs the champion's reference -> event on drift."""

from __future__ import annotations

import argparse
from typing import Any

from prefect import flow

from tasks.drift import (
    check_incoming,
    emit_drift_detected,
    push_incoming_features,
    record_drift,
)
from tasks.observability import observe_run
from tasks.reporting import summarize_drift
from tasks.spec import resolve_spec


@flow(
    name="drift_check", log_prints=True, on_completion=[observe_run], on_failure=[observe_run], on_crashed=[observe_run]
)
def drift_check(
    spec: str | dict[str, Any] = "pipelines/digits-quick.yaml", incoming: str | None = None, push_features: bool = True
) -> dict[str, Any]:
    """Compare new images with the champion's training data; emit canvascraft.drift.detected on drift.

    Args:
        spec: The pipeline spec (a path relative to the project, YAML text or a mapping); its publish section names
            the champion whose training data is the reference, its drift section the method and thresholds.
        incoming: The s3://bucket/prefix where new images land; empty: the spec's drift.incoming. Only images not
            already in the champion's training snapshot are compared.
        push_features: Also write the new images' palette features to Feast (offline store, then online).
    """
    pipeline = resolve_spec(spec)
    check = check_incoming(pipeline, incoming)
    result = record_drift(pipeline, check.result)
    features = push_incoming_features(check.incoming_report, pipeline) if push_features else None
    event_id = emit_drift_detected(result) if result.event_due else None
    return summarize_drift(result, event_id, features)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Run the drift_check flow.")
    parser.add_argument("spec", nargs="?", default="pipelines/digits-quick.yaml")
    parser.add_argument("--incoming", default=None, help="s3://BUCKET/PREFIX (default: spec drift.incoming)")
    parser.add_argument("--no-push-features", action="store_true", help="Do not write the features to Feast.")
    args = parser.parse_args()
    drift_check(args.spec, args.incoming, not args.no_push_features)
