"""Data-parallel trainers (canvascraft/trainers/distributed.py) on two real gloo processes, without Ray: the gradient
average of two half batches equals one full batch, replicas stay identical, rank 0 checkpoints and every rank
resumes from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ddp_helpers import LinearTrainer, both_ranks, images, run_ranks

from canvascraft.trainers import DCGANTrainer, DDPMTrainer, load_trainer
from canvascraft.trainers.distributed import DistributedError, check_workers, distributed_class

LINEAR = {"sample_size": 8, "channels": 1, "batch_size": 16, "steps": 12, "log_every": 1, "seed": 4}
DDPM = {
    "sample_size": 8,
    "channels": 1,
    "block_out_channels": [16, 32],
    "layers_per_block": 1,
    "attention_head_dim": 8,
    "steps": 3,
    "batch_size": 8,
    "warmup_steps": 1,
    "log_every": 1,
    "seed": 2,
}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pair of gloo processes runs both scenarios (process start and imports cost most of the time here)."""
    folder = tmp_path_factory.mktemp("ddp")
    run_ranks(both_ranks, 2, folder, LINEAR, 5, DDPM)
    return folder


def test_two_half_batches_equal_one_full_batch_and_resume_is_exact(two_ranks: Path) -> None:
    folder = two_ranks / "linear"
    ranks = [torch.load(folder / f"rank{r}.pt") for r in range(2)]
    # the single-process reference: the same seeded global minibatches, whole, in one process
    reference = LinearTrainer(LINEAR, device="cpu")
    expected = reference.train(None, images())

    for rank in ranks:
        assert rank["batch_sizes"] == [8] * 12  # each rank trained on its half of every global minibatch
        for name, value in reference.net.state_dict().items():
            torch.testing.assert_close(rank["params"][name], value, rtol=1e-5, atol=1e-6)
        # the reported loss is the global minibatch's loss (the mean of the ranks' half-batch losses)
        torch.testing.assert_close(torch.tensor(rank["losses"]), torch.tensor(expected.losses), rtol=1e-5, atol=1e-6)
        assert rank["images_per_step"] == pytest.approx(16)  # throughput counts the global batch
    for name in ranks[0]["params"]:  # the replicas are identical, not merely close
        assert torch.equal(ranks[0]["params"][name], ranks[1]["params"][name])
    checkpoints = sorted(p.name for p in (folder / "ckpt").iterdir())
    assert checkpoints == ["step_00000005"]  # rank 0 wrote it; the step-12 run passed no checkpoint_root


def test_ddpm_replicas_stay_identical_and_rank0_checkpoint_loads_plainly(two_ranks: Path) -> None:
    config, folder = DDPM, two_ranks / "ddpm"
    ranks = [torch.load(folder / f"rank{r}.pt") for r in range(2)]
    for name, value in ranks[0]["unet"].items():
        assert torch.equal(value, ranks[1]["unet"][name]), name
    assert all(torch.equal(a, b) for a, b in zip(ranks[0]["ema"], ranks[1]["ema"], strict=True))
    assert ranks[0]["losses"] == ranks[1]["losses"] and len(ranks[0]["losses"]) == 3
    # the checkpoint is an ordinary DDPM checkpoint of the trained weights
    plain = load_trainer(folder / "ckpt" / "step_00000003", device="cpu")
    assert isinstance(plain, DDPMTrainer) and plain.step == 3
    for name, value in plain.unet.state_dict().items():
        assert torch.equal(value, ranks[0]["unet"][name]), name
    assert plain.sample(2, seed=0).shape == (2, 1, 8, 8)
    # the ranks drew different noise: a single process on the full batch follows another loss curve
    single = DDPMTrainer(config, device="cpu").train(None, images(size=8))
    assert single.losses != ranks[0]["losses"]


def test_unsupported_trainers_and_uneven_batches_are_refused() -> None:
    with pytest.raises(
        DistributedError,
        match=r"trainer 'dcgan' cannot train data-parallel: its step alternates "
        r"two optimizers.*allowed values: ddpm",
    ):
        distributed_class(DCGANTrainer)
    with pytest.raises(DistributedError, match=r"needs an initialised torch\.distributed process group"):
        distributed_class(DDPMTrainer)(device="cpu")
    assert check_workers("dcgan", 1, {}, None) == []
    (problem,) = check_workers("dcgan", 2, {}, None)
    assert "tuner.workers_per_trial=2: trainer 'dcgan' cannot train data-parallel" in problem
    assert "allowed trainers with workers_per_trial > 1: ddpm" in problem
    assert check_workers("ddpm", 2, {"batch_size": 64}, None) == []
    assert check_workers("ddpm", 4, {}, None) == []  # the default batch_size, 64
    (problem,) = check_workers("ddpm", 3, {"batch_size": 64}, None)
    assert "trainer.params.batch_size" in problem and "must be a multiple of 3; got 64" in problem
    (problem,) = check_workers("ddpm", 4, {"batch_size": 64}, [32, 48, 50])
    assert problem.endswith("must be a multiple of 4; got 50")
