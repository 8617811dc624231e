"""Tasks: register the model with lineage, apply the promotion gate; roll back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run

from canvascraft import tracking
from canvascraft.artifact_root import artifact_root
from canvascraft.evaluation.score_records import FidScore
from canvascraft.evaluation.stage import (
    fit_classifier,
    rescore_registered,
    seeded_sample,
    training_set,
)
from canvascraft.hashing import stable_hash
from canvascraft.ingest import IngestReport
from canvascraft.outcomes import Evaluation, FeaturesOutcome, PublishOutcome, TrainingSelection
from canvascraft.preprocess import ShardSet
from canvascraft.publishing import model_registry as registry
from canvascraft.reports import evaluation_markdown
from canvascraft.settings import get_settings
from canvascraft.spec import PipelineSpec
from canvascraft.storage import make_s3_client
from tasks.promotion_lock import promotion_lock
from tasks.reporting import artifact_key
from tasks.retry_policy import retry_on_io


@task(name="publish", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_on_io, cache_policy=NO_CACHE)
def publish_model(
    spec: PipelineSpec,
    checkpoint: str,
    evaluation: Evaluation,
    report: IngestReport,
    shards: ShardSet,
    features: FeaturesOutcome,
    parent_run_id: str,
    selection: TrainingSelection | None = None,
    incoming_dataset_version: str | None = None,
) -> PublishOutcome:
    """New registered version with lineage tags (once per run and checkpoint); ``@champion`` only through the gate."""
    if spec.publish is None:
        return PublishOutcome(published=False, reason="spec has no publish section")
    settings = get_settings()
    tracking.configure(settings)
    score = evaluation.score
    tags = {
        "dataset_version": report.dataset_version,
        "feature_views": ",".join(features.feature_views),
        "brush_stack_hash": shards.stack_key,
        "spec_hash": spec.spec_hash(),
        "code_version": registry.code_version(),
        "seed": str(spec.seed),
        "pipeline": spec.name,
        "prefect_flow_run_id": str(flow_run.id or ""),
        **({"incoming_dataset_version": incoming_dataset_version} if incoming_dataset_version else {}),
        **registry.save_score_tags(score),
    }
    name = spec.publish.registered_model
    version = registry.publish_version(
        name, checkpoint, parent_run_id, tags, publish_key=stable_hash({"run": parent_run_id, "checkpoint": checkpoint})
    )
    kept = selection.kept_image_ids if selection is not None else None
    s3 = make_s3_client(settings) if (spec.evaluator.weights or "").startswith("s3://") else None

    def rescore(champion: str) -> FidScore:
        """The champion on this candidate's terms (its reference sample, weights, dims, resize, N, seed, classifier)."""
        images, labels = training_set(shards, kept, artifact_root(settings))  # read once for both
        real = seeded_sample(images, spec.evaluator.num_samples, spec.seed)
        classifier = fit_classifier(images, labels, shards, kept, spec) if score.classifier is not None else None
        return rescore_registered(
            f"models:/{name}/{champion}", score, real, spec, settings, s3_client=s3, classifier=classifier
        )

    gate = spec.publish.gate
    outcome = registry.gate_and_alias(
        name,
        version,
        score,
        metric=gate.metric,
        margin=gate.margin,
        tag=spec.publish.tag,
        lock=promotion_lock(name),
        rescore=rescore,
        on_unusable=gate.on_unusable_champion,
    )
    verdict = outcome.verdict
    champion_value = verdict.champion.metric(gate.metric) if verdict.champion is not None else None
    tracking.log_to_run(
        parent_run_id,
        tags={
            "registered_model": name,
            "registered_version": version,
            "promoted": str(outcome.promoted),
            "gate_basis": verdict.basis,
        },
        metrics={f"gate_champion_{gate.metric}": champion_value} if champion_value is not None else None,
    )
    create_markdown_artifact(  # the evaluation artifact again, now with the champion's side and the verdict
        key=artifact_key(spec.name, "evaluation"),
        markdown=evaluation_markdown(spec.name, score, parent_run_id, Path(evaluation.grid).name, verdict=verdict),
        description="FID/KID of the best trial and the promotion verdict",
    )
    emit_event(
        event="canvascraft.retrain.completed",
        resource={
            "prefect.resource.id": f"canvascraft.pipeline.{spec.name}",
            "canvascraft.model": name,
            "canvascraft.promoted": str(outcome.promoted).lower(),
        },  # automations match labels, not payload
        payload={
            "version": version,
            "promoted": outcome.promoted,
            "reason": outcome.reason,
            "summary": outcome.summary,
            "basis": verdict.basis,
            "metric": gate.metric,
            "candidate_score": verdict.candidate.model_dump(mode="json"),
            "champion_score": verdict.champion.model_dump(mode="json") if verdict.champion is not None else None,
            "champion_version": verdict.champion_version,
            "fid": score.fid,
            "dataset_version": report.dataset_version,
            "incoming_dataset_version": incoming_dataset_version,
        },
    )
    return PublishOutcome.from_gate(name, outcome, score)


@task(name="rollback", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_on_io, cache_policy=NO_CACHE)
def rollback_model(name: str) -> dict[str, Any]:
    """``@champion`` back to ``@previous``."""
    settings = get_settings()
    tracking.configure(settings)
    outcome = registry.rollback(name, promotion_lock(name))
    emit_event(
        event="canvascraft.model.rolled-back",
        payload=outcome,
        resource={"prefect.resource.id": f"canvascraft.model.{name}", "prefect.resource.name": name},
    )
    return outcome
