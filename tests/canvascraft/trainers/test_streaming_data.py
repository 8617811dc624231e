"""Trainers on streamed data (a ShardReader over shard files): the same batches, the same parameters, exact resume."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from trainer_helpers import assert_same_state

from canvascraft.artifact_root import ArtifactRoot
from canvascraft.preprocess import ShardSet
from canvascraft.shard_reader import ShardReader
from canvascraft.trainers import DCGANTrainer, DDPMTrainer, TrainingDataError

TINY = {
    "sample_size": 16,
    "channels": 1,
    "block_out_channels": (16, 32),
    "layers_per_block": 1,
    "batch_size": 8,
    "learning_rate": 1e-3,
    "warmup_steps": 1,
    "inference_steps": 5,
    "seed": 0,
}
GAN = {"sample_size": 16, "channels": 1, "g_features": 8, "d_features": 8, "batch_size": 16, "steps": 4}


def shard_reader(images: torch.Tensor, root: Path, sizes: list[int]) -> ShardReader:
    """``images`` written as safetensors files of ``sizes`` rows (unequal, as content-defined pieces are)."""
    assert sum(sizes) == len(images)
    artifacts = ArtifactRoot(str(root), root.parent / f"{root.name}-cache")
    keys, start = [], 0
    for number, size in enumerate(sizes):
        key = f"shards/pieces/test/{number}.safetensors"
        artifacts.local(key).parent.mkdir(parents=True, exist_ok=True)
        save_file({"images": images[start : start + size].contiguous()}, str(artifacts.local(key)))
        keys.append(key)
        start += size
    shard_set = ShardSet(
        key="shards/v/test",
        path=str(root / "shards/v/test"),
        dataset_version="v",
        stack_key="test",
        count=len(images),
        shape=list(images.shape[1:]),
        pieces=keys,
        counts=sizes,
        image_ids=[f"{i:064x}" for i in range(len(images))],
        labels=[None] * len(images),
        brushes=[],
        seed=0,
    )
    return ShardReader(shard_set, artifacts)


@pytest.fixture
def streamed(digits16: torch.Tensor, tmp_path: Path) -> ShardReader:
    return shard_reader(digits16, tmp_path / "root", [700, 3, 600, 494])


def test_streamed_training_equals_in_memory_training(digits16: torch.Tensor, streamed: ShardReader) -> None:
    config = {**TINY, "steps": 2, "grad_accum_steps": 2, "dropout": 0.1}  # micro-batch order matters too
    in_memory = DDPMTrainer(config, device="cpu")
    from_shards = DDPMTrainer(config, device="cpu")
    assert in_memory.train(None, digits16).losses == from_shards.train(None, streamed).losses
    assert_same_state(in_memory.unet.state_dict(), from_shards.unet.state_dict(), "unet")

    gan_memory, gan_shards = DCGANTrainer(GAN, device="cpu"), DCGANTrainer(GAN, device="cpu")
    assert gan_memory.train(None, digits16).losses == gan_shards.train(None, streamed).losses
    assert_same_state(gan_memory.generator.state_dict(), gan_shards.generator.state_dict(), "generator")


def test_resume_on_streamed_data_is_exact(streamed: ShardReader, tmp_path: Path) -> None:
    """Train k steps, checkpoint, resume to n in a 'new trial' (a reader unpickled afresh) == n uninterrupted."""
    config = {**GAN, "steps": 8, "checkpoint_every": 3}  # 8 x 16 images: the run crosses into a second epoch
    uninterrupted = DCGANTrainer(config, device="cpu")
    full = uninterrupted.train(None, streamed.select(torch.arange(100)))

    first = DCGANTrainer(config, device="cpu")
    first.train(config, streamed.select(torch.arange(100)), checkpoint_root=tmp_path / "ckpt")
    resumed = DCGANTrainer(device="cpu")
    resumed.load_checkpoint(tmp_path / "ckpt" / "step_00000003")
    rest = resumed.train(config, pickle.loads(pickle.dumps(streamed.select(torch.arange(100)))))

    assert (rest.steps_run, rest.steps) == (5, 8)
    assert rest.losses == full.losses[3:]
    for name in ("generator", "discriminator"):
        assert_same_state(getattr(uninterrupted, name).state_dict(), getattr(resumed, name).state_dict(), name)
    assert_same_state(uninterrupted.optimizer_g.state_dict(), resumed.optimizer_g.state_dict(), "optimizer_g")
    assert_same_state(uninterrupted.optimizer_d.state_dict(), resumed.optimizer_d.state_dict(), "optimizer_d")


def test_a_training_set_selection_trains_like_the_indexed_tensor(digits16: torch.Tensor, streamed: ShardReader) -> None:
    rows = torch.arange(0, len(digits16), 3)  # what trial_data keeps: an index map over the files, not a copy
    a = DCGANTrainer(GAN, device="cpu").train(None, digits16[rows])
    b = DCGANTrainer(GAN, device="cpu").train(None, streamed.select(rows))
    assert a.losses == b.losses


def test_streamed_data_is_checked_by_shape_and_batch_by_batch_by_range(digits16: torch.Tensor, tmp_path: Path) -> None:
    trainer = DCGANTrainer(GAN, device="cpu")
    with pytest.raises(TrainingDataError, match=r"expected shape N x 1 x 16 x 16 .*got \(64, 3, 16, 16\)"):
        trainer.train(None, shard_reader(torch.zeros(64, 3, 16, 16), tmp_path / "rgb", [64]))
    bright = digits16[:64].clone()
    bright[40:] = 2.0  # out of [-1, 1]: found when a minibatch holding one of these rows is read
    with pytest.raises(TrainingDataError, match=r"data \(minibatch of rows .*\): values must lie in \[-1, 1\]"):
        trainer.train(None, shard_reader(bright, tmp_path / "bright", [30, 34]))
    with pytest.raises(TrainingDataError, match=r"expected a torch\.Tensor N x C x H x W or TrainingData"):
        trainer.train(None, [[0.0]])
