"""Tasks: register the model with lineage, apply the promotion gate; roll back."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run

from canvascraft import tracking
from canvascraft.evaluation.scores import FidScore
from canvascraft.ingest import IngestReport
from canvascraft.preprocess import ShardSet
from canvascraft.publishing import model_registry as registry
from canvascraft.settings import get_settings
from canvascraft.spec import PipelineSpec
from tasks.retry_policy import retry_on_io


@task(name="publish", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_on_io, cache_policy=NO_CACHE)
def publish_model(
    spec: PipelineSpec, checkpoint: str, evaluation: dict[str, Any], report: IngestReport, shards: ShardSet,
    features: dict[str, Any], parent_run_id: str,
) -> dict[str, Any]:
    """New registered version with lineage tags; ``@<tag>`` always, ``@champion`` only through the gate."""
    if spec.publish is None:
        return {"published": False, "reason": "spec has no publish section"}
    settings = get_settings()
    tracking.configure(settings)
    score = FidScore.model_validate(evaluation["score"])
    tags = {
        "dataset_version": report.dataset_version,
        "feature_views": ",".join(features.get("feature_views", [])),
        "brush_stack_hash": shards.stack_key,
        "spec_hash": spec.spec_hash(),
        "code_version": registry.code_version(),
        "seed": str(spec.seed),
        "pipeline": spec.name,
        "prefect_flow_run_id": str(flow_run.id or ""),
        **registry.save_score_tags(score),
    }
    name = spec.publish.registered_model
    version = registry.log_model_version(name, checkpoint, parent_run_id, tags)
    outcome = registry.gate_and_alias(
        name, version, score, metric=spec.publish.gate.metric, margin=spec.publish.gate.margin,
        tag=spec.publish.tag, lock=registry.lock_for(settings.home, name),
    )
    tracking.log_to_run(parent_run_id, tags={"registered_model": name, "registered_version": version,
                                             "promoted": str(outcome["promoted"])})
    emit_event(
        event="canvascraft.retrain.completed",
        resource={"prefect.resource.id": f"canvascraft.pipeline.{spec.name}", "canvascraft.model": name},
        payload={"version": version, "promoted": outcome["promoted"], "fid": score.fid,
                 "dataset_version": report.dataset_version},
    )
    return {"published": True, "model": name, **outcome, "fid": score.fid, "kid_mean": score.kid_mean,
            "comparability": {"n": score.n, "dims": score.dims, "resize": score.resize,
                              "weights_sha256": score.weights_sha256, "reference": score.reference}}


@task(name="rollback", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_on_io, cache_policy=NO_CACHE)
def rollback_model(name: str) -> dict[str, Any]:
    """``@champion`` back to ``@previous``."""
    settings = get_settings()
    tracking.configure(settings)
    return registry.rollback(name, registry.lock_for(settings.home, name))
