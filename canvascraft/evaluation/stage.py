"""The evaluation stage of a run: N samples from the best checkpoint scored against N real training images.

The N real images are a content-ranked sample (``sample_order``), so adding an image to the training set changes at
most one member of it, and their Inception features can be computed per content-defined chunk
(``reference_chunks``; ``plan_reference`` is the plan of that) and reused across runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from canvascraft.artifact_root import ArtifactRoot, artifact_root
from canvascraft.evaluation import EvaluationInputError
from canvascraft.evaluation.classifier_score import ImageClassifier
from canvascraft.evaluation.inception import InceptionFeatureExtractor, load_feature_extractor, locate_inception_weights
from canvascraft.evaluation.reference_chunks import ReferenceChunk, extractor_key, plan_reference_chunks
from canvascraft.evaluation.scores import (
    FidScore,
    ReferenceKey,
    ReferenceStatsCache,
    reference_key,
    score_images,
)
from canvascraft.hashing import stable_hash
from canvascraft.ingest.snapshots import load_manifest
from canvascraft.outcomes import Evaluation
from canvascraft.preprocess import ShardSet, load_shards
from canvascraft.sampling import display_scale, save_grid
from canvascraft.settings import Settings
from canvascraft.spec import PipelineSpec
from canvascraft.trainers import load_trainer
from canvascraft.trainers.base import to_uint8


def training_rows(shard_set: ShardSet, kept_ids: list[str] | None) -> list[int]:
    """Rows of the shard set in the training set: all, or those whose image id the feature filters kept."""
    if kept_ids is None:
        return list(range(len(shard_set.image_ids)))
    kept = set(kept_ids)
    return [i for i, k in enumerate(shard_set.image_ids) if k in kept]


def training_set(
    shard_set: ShardSet, kept_ids: list[str] | None, artifacts: ArtifactRoot | None = None
) -> tuple[torch.Tensor, list[str | None]]:
    """The training images (after brushes and the feature filters, as the model sees them) and their labels."""
    images = load_shards(shard_set, artifacts)
    if kept_ids is None:
        return images, list(shard_set.labels)
    rows = training_rows(shard_set, kept_ids)
    return images[torch.tensor(rows, dtype=torch.long)], [shard_set.labels[i] for i in rows]


def sample_order(images_uint8: torch.Tensor, n: int, seed: int) -> list[int]:
    """Indices of the ``n`` images with the smallest ``sha256(seed, pixels)``, in that order (ties: lower index).

    A bottom-k sample by a keyed hash (Cohen & Kaplan, "Summarizing data using bottom-k sketches", PODC 2007): each
    image's rank depends on its own pixels only, so the sample is uniform for a seed yet stable when the set grows:
    a new image either enters (and the N-th leaves) or changes nothing; a random permutation would redraw it all.
    """
    prefix = f"{seed}:".encode()
    ranks = [hashlib.sha256(prefix + image.numpy().tobytes()).digest() for image in images_uint8]
    return sorted(range(len(ranks)), key=lambda i: (ranks[i], i))[:n]


def seeded_sample(images: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` of ``images`` as uint8, chosen by content rank (``sample_order``): the same N on every worker."""
    uint8 = to_uint8(images)
    return uint8[torch.tensor(sample_order(uint8, n, seed), dtype=torch.long)]


def reference_version(shard_set: ShardSet) -> str:
    """The reference of FID scores: the brushed training set, i.e. its dataset version AND brush-stack key."""
    return f"{shard_set.dataset_version}/{shard_set.stack_key}"


def reference_extractor(
    spec: PipelineSpec, settings: Settings, *, s3_client: Any | None = None, device: str | torch.device | None = None
) -> InceptionFeatureExtractor:
    """The spec's FID Inception extractor (weights located offline or on S3; one shared instance per process)."""
    cache_dir = settings.home / "cache" / "fid"
    weights = locate_inception_weights(spec.evaluator.weights, cache_dir=cache_dir, s3_client=s3_client)
    return load_feature_extractor(
        weights,
        cache_dir=cache_dir,
        dims=spec.evaluator.dims,
        resize=spec.evaluator.resize,
        device=device or spec.device,
    )


@dataclass
class ReferencePlan:
    """The reference statistics' key, whether the cache holds them, else the chunks and each chunk's uint8 images."""

    key: ReferenceKey
    found: bool
    chunks: list[ReferenceChunk] = field(default_factory=list)
    images: list[torch.Tensor] = field(default_factory=list)


def plan_reference(
    shard_set: ShardSet,
    kept_ids: list[str] | None,
    spec: PipelineSpec,
    settings: Settings,
    *,
    s3_client: Any | None = None,
) -> ReferencePlan:
    """The evaluation's N real images cut into content-defined chunks (none when their statistics are cached)."""
    artifacts = artifact_root(settings)
    rows = training_rows(shard_set, kept_ids)
    uint8 = to_uint8(load_shards(shard_set, artifacts)[torch.tensor(rows, dtype=torch.long)])
    order = sample_order(uint8, spec.evaluator.num_samples, spec.seed)
    real = uint8[torch.tensor(order, dtype=torch.long)]
    cache_dir = settings.home / "cache" / "fid"
    weights = locate_inception_weights(spec.evaluator.weights, cache_dir=cache_dir, s3_client=s3_client)
    key = reference_key(real, weights.sha256, spec.evaluator.dims, spec.evaluator.resize, reference_version(shard_set))
    if ReferenceStatsCache.for_artifacts(artifacts).get(key, need_features=True) is not None:
        return ReferencePlan(key=key, found=True)
    entries = {e.sha256: e for e in load_manifest(shard_set.dataset_version, artifacts).entries}
    chunks = plan_reference_chunks(
        [shard_set.image_ids[rows[i]] for i in order],
        entries,
        shard_set.stack_key,
        extractor_key(weights.sha256, spec.evaluator.dims, spec.evaluator.resize),
    )
    return ReferencePlan(key=key, found=False, chunks=chunks, images=[real[c.start : c.stop] for c in chunks])


def fit_classifier(
    images: torch.Tensor, labels: list[str | None], shard_set: ShardSet, kept_ids: list[str] | None, spec: PipelineSpec
) -> ImageClassifier:
    """The classifier of ``evaluator.classifier_score``, fitted on the labelled training set (seeded, reproducible);
    ``images``/``labels`` are ``training_set(shard_set, kept_ids)``, loaded once by the caller."""
    reference = stable_hash(
        {
            "training_set": f"{shard_set.dataset_version}/{shard_set.stack_key}",
            "kept": sorted(kept_ids) if kept_ids is not None else None,
        }
    )
    return ImageClassifier.fit(
        to_uint8(images), labels, size=spec.evaluator.classifier_size, seed=spec.seed, reference=reference
    )


def evaluate_checkpoint(
    checkpoint: str,
    shard_set: ShardSet,
    kept_ids: list[str] | None,
    spec: PipelineSpec,
    settings: Settings,
    *,
    s3_client: Any | None = None,
) -> Evaluation:
    """Sample from the checkpoint, score FID/KID with comparability keys, save a sample grid; return both."""
    evaluator = spec.evaluator
    artifacts = artifact_root(settings)
    images, labels = training_set(shard_set, kept_ids, artifacts)  # read once: the real sample and the classifier
    real = seeded_sample(images, evaluator.num_samples, spec.seed)
    n = len(real)  # equal N on both sides: FID is biased at small N and only comparable at equal N
    trainer = load_trainer(checkpoint, device=spec.device)
    fake = trainer.sample(n, seed=spec.seed, inference_steps=evaluator.sampling_steps)
    cache_dir = settings.home / "cache" / "fid"
    score: FidScore = score_images(
        real,
        fake,
        cache_dir=cache_dir,
        weights=evaluator.weights,
        dims=evaluator.dims,
        resize=evaluator.resize,
        device=trainer.device,
        seed=spec.seed,
        reference_cache=ReferenceStatsCache.for_artifacts(artifacts),
        # the reference set is the brushed training set: key it by dataset version AND brush-stack key
        dataset_version=reference_version(shard_set),
        s3_client=s3_client,
    )
    if evaluator.classifier_score:
        classifier = fit_classifier(images, labels, shard_set, kept_ids, spec)
        score = score.model_copy(update={"classifier": classifier.score(fake, confident=evaluator.confident)})
    grid = save_grid(fake[:64], Path(checkpoint).parent / "evaluation_samples.png", scale=display_scale(fake.shape[-1]))
    return Evaluation(score=score, grid=str(grid), n=n)


def rescore_registered(
    model_uri: str,
    candidate: FidScore,
    real: torch.Tensor,
    spec: PipelineSpec,
    settings: Settings,
    *,
    s3_client: Any | None = None,
    classifier: ImageClassifier | None = None,
) -> FidScore:
    """A registered generator scored on ``candidate``'s terms: same reference, weights, dims, resize, N and seed.

    ``real`` is the candidate's reference sample (its statistics are normally a cache hit, keyed by
    ``candidate.reference``); the generator samples ``candidate.n`` images with the spec's seed and sampler steps.
    A candidate with a classifier score needs ``classifier`` (the candidate's, refitted: ``fit_classifier``).
    """
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(model_uri)
    fake_nhwc = model.predict({"n": candidate.n, "seed": spec.seed, "inference_steps": spec.evaluator.sampling_steps})
    fake = torch.as_tensor(fake_nhwc).permute(0, 3, 1, 2).contiguous()
    cache_dir = settings.home / "cache" / "fid"
    score = score_images(
        real,
        fake,
        cache_dir=cache_dir,
        weights=spec.evaluator.weights,
        dims=candidate.dims,
        resize=candidate.resize,
        seed=spec.seed,
        kid=candidate.kid_mean is not None,
        reference_cache=ReferenceStatsCache.for_artifacts(artifact_root(settings)),
        dataset_version=candidate.reference,
        s3_client=s3_client,
    )
    if candidate.classifier is not None:
        if classifier is None:
            raise EvaluationInputError(
                "classifier",
                "the candidate has a classifier score but none was given",
                "the candidate's classifier (fit_classifier)",
            )
        rescored = classifier.score(fake, confident=candidate.classifier.confident)
        score = score.model_copy(update={"classifier": rescored})
    if not score.comparable_with(candidate):  # e.g. the configured weights changed between evaluate and publish
        differing = sorted(score.incomparable_fields(candidate))
        raise EvaluationInputError("rescore", f"differs from the candidate in {differing}")
    return score
