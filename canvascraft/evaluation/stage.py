"""The evaluation stage of a run: N samples from the best checkpoint scored against N real training images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from canvascraft.artifact_root import ArtifactRoot, artifact_root
from canvascraft.evaluation import EvaluationInputError
from canvascraft.evaluation.classifier_score import ImageClassifier
from canvascraft.evaluation.scores import FidScore, ReferenceStatsCache, score_images
from canvascraft.hashing import stable_hash
from canvascraft.preprocess import ShardSet, load_shards
from canvascraft.sampling import display_scale, save_grid
from canvascraft.settings import Settings
from canvascraft.spec import PipelineSpec
from canvascraft.trainers import load_trainer
from canvascraft.trainers.base import to_uint8


def training_set(shard_set: ShardSet, kept_ids: list[str] | None,
                 artifacts: ArtifactRoot | None = None) -> tuple[torch.Tensor, list[str | None]]:
    """The training images (after brushes and the feature filters, as the model sees them) and their labels."""
    images = load_shards(shard_set, artifacts)
    if kept_ids is None:
        return images, list(shard_set.labels)
    kept = set(kept_ids)
    rows = [i for i, k in enumerate(shard_set.image_ids) if k in kept]
    return images[torch.tensor(rows, dtype=torch.long)], [shard_set.labels[i] for i in rows]


def seeded_sample(images: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` of ``images`` as uint8, chosen by a seeded permutation (the same N real images on every worker)."""
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    return to_uint8(images[order])


def fit_classifier(images: torch.Tensor, labels: list[str | None], shard_set: ShardSet,
                   kept_ids: list[str] | None, spec: PipelineSpec) -> ImageClassifier:
    """The classifier of ``evaluator.classifier_score``, fitted on the labelled training set (seeded, reproducible);
    ``images``/``labels`` are ``training_set(shard_set, kept_ids)``, loaded once by the caller."""
    reference = stable_hash({"training_set": f"{shard_set.dataset_version}/{shard_set.stack_key}",
                             "kept": sorted(kept_ids) if kept_ids is not None else None})
    return ImageClassifier.fit(to_uint8(images), labels, size=spec.evaluator.classifier_size, seed=spec.seed,
                               reference=reference)


def evaluate_checkpoint(
    checkpoint: str, shard_set: ShardSet, kept_ids: list[str] | None, spec: PipelineSpec, settings: Settings,
    *, s3_client: Any | None = None,
) -> dict[str, Any]:
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
        real, fake, cache_dir=cache_dir, weights=evaluator.weights, dims=evaluator.dims, resize=evaluator.resize,
        device=trainer.device, seed=spec.seed, reference_cache=ReferenceStatsCache.for_artifacts(artifacts),
        # the reference set is the brushed training set: key it by dataset version AND brush-stack key
        dataset_version=f"{shard_set.dataset_version}/{shard_set.stack_key}", s3_client=s3_client,
    )
    if evaluator.classifier_score:
        classifier = fit_classifier(images, labels, shard_set, kept_ids, spec)
        score = score.model_copy(update={"classifier": classifier.score(fake, confident=evaluator.confident)})
    grid = save_grid(fake[:64], Path(checkpoint).parent / "evaluation_samples.png", scale=display_scale(fake.shape[-1]))
    return {"score": score.model_dump(), "grid": str(grid), "n": n}


def rescore_registered(
    model_uri: str, candidate: FidScore, real: torch.Tensor, spec: PipelineSpec, settings: Settings,
    *, s3_client: Any | None = None, classifier: ImageClassifier | None = None,
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
        real, fake, cache_dir=cache_dir, weights=spec.evaluator.weights, dims=candidate.dims, resize=candidate.resize,
        seed=spec.seed, kid=candidate.kid_mean is not None, reference_cache=ReferenceStatsCache.for_artifacts(artifact_root(settings)),
        dataset_version=candidate.reference, s3_client=s3_client,
    )
    if candidate.classifier is not None:
        if classifier is None:
            raise EvaluationInputError("classifier", "the candidate has a classifier score but none was given",
                                       "the candidate's classifier (fit_classifier)")
        score = score.model_copy(update={"classifier": classifier.score(fake, confident=candidate.classifier.confident)})
    if not score.comparable_with(candidate):  # e.g. the configured weights changed between evaluate and publish
        raise EvaluationInputError("rescore", f"differs from the candidate in {sorted(score.incomparable_fields(candidate))}")
    return score
