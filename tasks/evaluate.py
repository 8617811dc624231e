"""Tasks: FID reference features per chunk (plan, mapped chunks, combine), then FID/KID of the best checkpoint with
its sample grid to MLflow and to the Prefect UI.

``flows/stages.py`` runs the reference tasks as one subflow before ``evaluate``: ``fid-reference-plan`` ->
``fid-reference-chunk`` mapped over the chunks (the stage's task runner: threads, or Ray) -> ``fid-reference``,
which stores the statistics in the reference cache where ``evaluate`` finds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from prefect import task
from prefect.artifacts import create_image_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from canvascraft import tracking
from canvascraft.artifact_root import artifact_root
from canvascraft.evaluation.reference_chunks import ChunkFeatures, ReferenceChunk, chunk_features, combine_reference
from canvascraft.evaluation.score_records import FidScore
from canvascraft.evaluation.scores import ReferenceStatsCache
from canvascraft.evaluation.stage import ReferencePlan, evaluate_checkpoint, plan_reference, reference_extractor
from canvascraft.hashing import stable_hash
from canvascraft.outcomes import Evaluation, ReferenceOutcome, TrainingSelection
from canvascraft.preprocess import ShardSet
from canvascraft.reports import evaluation_markdown
from canvascraft.settings import Settings, get_settings
from canvascraft.spec import PipelineSpec
from canvascraft.storage import make_s3_client
from tasks.reporting import artifact_key
from tasks.retry_policy import retry_on_io


def _weights_client(spec: PipelineSpec, settings: Settings) -> Any | None:
    """A boto3 client when the spec's Inception weights live on S3."""
    return make_s3_client(settings) if (spec.evaluator.weights or "").startswith("s3://") else None


def reference_chunk_cache_key(context: Any, parameters: dict[str, Any]) -> str | None:
    """Key = chunk content + extractor (its features file), only once that file is in the artifact root.

    The cached value names the file, so there is no key while the root lacks it: a cache hit never names deleted
    features (the first run therefore stores no record; the next one, finding the file at once, does).
    """
    chunk: ReferenceChunk = parameters["chunk"]
    if not artifact_root(get_settings()).exists(chunk.features_key):
        return None
    return f"fid-reference-chunk-{stable_hash(chunk.features_key, length=32)}"


@task(
    name="fid-reference-plan",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_on_io,
)
def plan_fid_reference(spec: PipelineSpec, shards: ShardSet, kept_ids: list[str] | None) -> ReferencePlan:
    """The evaluation's N real images (content-ranked sample) cut into chunks, unless their statistics are cached."""
    settings = get_settings()
    return plan_reference(shards, kept_ids, spec, settings, s3_client=_weights_client(spec, settings))


# Retries only on transient I/O (weights on S3, the artifact root); a network or input error fails at once.
@task(
    name="fid-reference-chunk",
    cache_key_fn=reference_chunk_cache_key,
    persist_result=True,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_on_io,
)
def fid_reference_chunk(chunk: ReferenceChunk, images: torch.Tensor, spec: PipelineSpec) -> ChunkFeatures:
    """Inception features of one chunk of the reference sample, stored in the artifact root (or found there)."""
    settings = get_settings()
    extractor = reference_extractor(spec, settings, s3_client=_weights_client(spec, settings))
    return chunk_features(chunk, images, extractor, artifact_root(settings))


@task(
    name="fid-reference", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_on_io
)
def combine_fid_reference(plan: ReferencePlan, chunks: list[ChunkFeatures]) -> ReferenceOutcome:
    """Reference mu/sigma from the chunks' features (exact: concatenated, one covariance), into the reference cache."""
    if not plan.found:
        artifacts = artifact_root(get_settings())
        combine_reference(plan.key, plan.chunks, artifacts, ReferenceStatsCache.for_artifacts(artifacts))
    return ReferenceOutcome(
        reference=plan.key.model_dump(),
        found=plan.found,
        chunks=len(plan.chunks),
        chunks_computed=sum(1 for c in chunks if c.computed),
        seconds=round(sum(c.seconds for c in chunks), 3),
    )


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_model(
    spec: PipelineSpec, checkpoint: str, shards: ShardSet, selection: TrainingSelection, parent_run_id: str
) -> Evaluation:
    """Score the best checkpoint; log FID/KID with their comparability keys and the sample grid."""
    settings = get_settings()
    tracking.configure(settings)
    s3 = _weights_client(spec, settings)
    evaluation = evaluate_checkpoint(checkpoint, shards, selection.kept_image_ids, spec, settings, s3_client=s3)
    score, grid = evaluation.score, Path(evaluation.grid)
    tracking.log_to_run(
        parent_run_id,
        metrics=score_metrics(score),
        params=score_params(score),
        artifacts=[grid],
        artifact_path="samples",
    )
    create_markdown_artifact(
        key=artifact_key(spec.name, "evaluation"),
        markdown=evaluation_markdown(spec.name, score, parent_run_id, grid.name),
        description="FID/KID of the best trial",
    )
    uri = settings.resolved_mlflow_tracking_uri
    if uri.startswith("http"):  # an MLflow server serves the grid: show it inline in the Prefect UI
        create_image_artifact(
            image_url=f"{uri}/get-artifact?path=samples/{grid.name}&run_uuid={parent_run_id}",
            key=artifact_key(spec.name, "samples"),
            description="Samples of the best trial",
        )
    return evaluation


def score_metrics(score: FidScore) -> dict[str, float]:
    """The MLflow metrics of a score: FID, KID when computed, the classifier score when computed."""
    metrics = {"fid": score.fid}
    if score.kid_mean is not None and score.kid_std is not None:
        metrics |= {"kid_mean": score.kid_mean, "kid_std": score.kid_std}
    if score.classifier is not None:
        metrics |= {
            "classifier_score": score.classifier.mean_top_probability,
            "classifier_coverage": float(score.classifier.coverage),
            "classifier_accuracy": score.classifier.classifier_accuracy,
        }
    return metrics


def score_params(score: FidScore) -> dict[str, Any]:
    """The MLflow params of a score: its comparability keys."""
    params: dict[str, Any] = {
        "fid_n": score.n,
        "fid_dims": score.dims,
        "fid_resize": score.resize,
        "fid_weights_sha256": score.weights_sha256,
    }
    if score.classifier is not None:
        params["classifier_confident"] = score.classifier.confident
    return params
