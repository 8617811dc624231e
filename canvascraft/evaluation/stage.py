"""The evaluation stage of a run: N samples from the best checkpoint scored against N real training images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from canvascraft.evaluation.scores import FidScore, ReferenceStatsCache, score_images
from canvascraft.preprocess import ShardSet, load_shards
from canvascraft.sampling import save_grid
from canvascraft.settings import Settings
from canvascraft.spec import PipelineSpec
from canvascraft.trainers import load_trainer
from canvascraft.trainers.base import to_uint8


def real_sample(shard_set: ShardSet, kept_ids: list[str] | None, n: int, seed: int) -> torch.Tensor:
    """``n`` real training images (after brushes, as the model sees them) as uint8, chosen by a seeded permutation."""
    images = load_shards(shard_set)
    if kept_ids is not None:
        kept = set(kept_ids)
        images = images[torch.tensor([i for i, k in enumerate(shard_set.image_ids) if k in kept], dtype=torch.long)]
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    return to_uint8(images[order])


def evaluate_checkpoint(
    checkpoint: str, shard_set: ShardSet, kept_ids: list[str] | None, spec: PipelineSpec, settings: Settings,
    *, s3_client: Any | None = None,
) -> dict[str, Any]:
    """Sample from the checkpoint, score FID/KID with comparability keys, save a sample grid; return both."""
    evaluator = spec.evaluator
    real = real_sample(shard_set, kept_ids, evaluator.num_samples, spec.seed)
    n = len(real)  # equal N on both sides: FID is biased at small N and only comparable at equal N
    trainer = load_trainer(checkpoint, device=spec.device)
    fake = trainer.sample(n, seed=spec.seed, inference_steps=evaluator.sampling_steps)
    cache_dir = settings.home / "cache" / "fid"
    score: FidScore = score_images(
        real, fake, cache_dir=cache_dir, weights=evaluator.weights, dims=evaluator.dims, resize=evaluator.resize,
        device=trainer.device, seed=spec.seed, reference_cache=ReferenceStatsCache(cache_dir / "reference"),
        # the reference set is the brushed training set: key it by dataset version AND brush-stack key
        dataset_version=f"{shard_set.dataset_version}/{shard_set.stack_key}", s3_client=s3_client,
    )
    grid = save_grid(fake[:64], Path(checkpoint).parent / "evaluation_samples.png")
    return {"score": score.model_dump(), "grid": str(grid), "n": n}
