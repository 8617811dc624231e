"""DDPM trainer: learns on real digits, is seeded, resumes exactly and samples deterministic uint8 images."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler
from diffusers.optimization import get_cosine_schedule_with_warmup
from trainer_helpers import assert_same_state, window_means

from canvascraft.errors import ParameterError
from canvascraft.trainers import DDPMTrainer, TrainingDataError, load_trainer

# Tiny UNet: ~0.1 s/step at batch 32 on 2 idle cores here (up to ~6x slower when the machine is shared).
TINY = {
    "sample_size": 16,
    "channels": 1,
    "block_out_channels": (16, 32),
    "layers_per_block": 1,
    "batch_size": 32,
    "learning_rate": 1e-3,
    "warmup_steps": 1,
    "inference_steps": 5,
    "seed": 0,
}


def test_loss_decreases_on_real_digits(digits16: torch.Tensor) -> None:
    trainer = DDPMTrainer({**TINY, "steps": 40, "warmup_steps": 5}, device="cpu")
    result = trainer.train(None, digits16)
    first, last = window_means(result.losses, 10)
    assert result.steps == 40 and result.steps_run == 40 and len(result.losses) == 40
    assert all(math.isfinite(loss) for loss in result.losses)
    # Untrained epsilon-prediction MSE starts near 1 (the noise variance); a learning UNet roughly halves it fast.
    assert last < 0.5 * first, (first, last)
    assert result.final_loss == pytest.approx(last)
    assert result.images_per_sec > 0 and result.step_time > 0


def test_same_seed_same_loss_curve_other_seed_differs(digits16: torch.Tensor) -> None:
    config = {**TINY, "steps": 6, "batch_size": 16, "dropout": 0.1}
    a = DDPMTrainer(config, device="cpu").train(None, digits16)
    b = DDPMTrainer(config, device="cpu").train(None, digits16)
    c = DDPMTrainer({**config, "seed": 1}, device="cpu").train(None, digits16)
    assert a.losses == b.losses
    assert a.losses != c.losses


def test_checkpoint_roundtrip_restores_everything(digits16: torch.Tensor, tmp_path: Path) -> None:
    trainer = DDPMTrainer({**TINY, "steps": 5, "batch_size": 16, "grad_accum_steps": 2}, device="cpu")
    trainer.train(None, digits16)
    trainer.save_checkpoint(tmp_path / "ckpt")

    restored = load_trainer(tmp_path / "ckpt", device="cpu")
    assert isinstance(restored, DDPMTrainer)
    assert restored.step == 5 and restored.config == trainer.config
    assert_same_state(trainer.unet.state_dict(), restored.unet.state_dict(), "unet")
    assert_same_state(trainer.ema.state_dict(), restored.ema.state_dict(), "ema")
    assert_same_state(trainer.optimizer.state_dict(), restored.optimizer.state_dict(), "optimizer")
    assert_same_state(trainer.lr_scheduler.state_dict(), restored.lr_scheduler.state_dict(), "lr_scheduler")
    assert torch.equal(trainer.rng.get_state(), restored.rng.get_state())
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}
    assert public(restored.noise_scheduler.config) == public(trainer.noise_scheduler.config)
    files = {p.relative_to(tmp_path / "ckpt").as_posix() for p in (tmp_path / "ckpt").rglob("*") if p.is_file()}
    assert {
        "canvascraft_trainer.json",
        "training_state.json",
        "training_state.safetensors",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet_ema/config.json",
        "unet_ema/diffusion_pytorch_model.safetensors",
        "scheduler/scheduler_config.json",
    } <= files


def test_resume_continues_exactly_like_uninterrupted_training(digits16: torch.Tensor, tmp_path: Path) -> None:
    # dropout and gradient accumulation on: their RNG and micro-batch order must survive the restart too.
    config = {**TINY, "steps": 6, "batch_size": 8, "grad_accum_steps": 2, "dropout": 0.1, "checkpoint_every": 3}
    uninterrupted = DDPMTrainer(config, device="cpu")
    full = uninterrupted.train(None, digits16)

    first = DDPMTrainer(config, device="cpu")
    first.train(config, digits16, checkpoint_root=tmp_path)
    resumed = DDPMTrainer(device="cpu")
    resumed.load_checkpoint(tmp_path / "step_00000003")
    assert resumed.step == 3
    rest = resumed.train(config, digits16)

    assert rest.steps_run == 3 and rest.steps == 6
    assert rest.losses == full.losses[3:]
    assert_same_state(uninterrupted.unet.state_dict(), resumed.unet.state_dict(), "unet")
    assert_same_state(uninterrupted.ema.state_dict(), resumed.ema.state_dict(), "ema")
    assert torch.equal(uninterrupted.sample(3, seed=7), resumed.sample(3, seed=7))


def test_longer_budget_on_resume_stretches_the_cosine_schedule(digits16: torch.Tensor) -> None:
    trainer = DDPMTrainer({**TINY, "steps": 6, "batch_size": 16}, device="cpu")
    trainer.train(None, digits16)
    result = trainer.train({**TINY, "steps": 9, "batch_size": 16}, digits16)
    assert (result.steps, result.steps_run) == (9, 3)
    reference = get_cosine_schedule_with_warmup(torch.optim.SGD([torch.zeros(1)], lr=1.0), 1, 9)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * reference.lr_lambdas[0](9))


def test_resume_rejects_architecture_change(digits16: torch.Tensor) -> None:
    trainer = DDPMTrainer({**TINY, "steps": 2, "batch_size": 16}, device="cpu")
    with pytest.raises(ParameterError, match=r"block_out_channels.*only checkpoint_every, log_every, steps may change"):
        trainer.train({**TINY, "steps": 2, "batch_size": 16, "block_out_channels": (16, 16)}, digits16)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_sample_is_uint8_of_the_right_shape_and_deterministic(digits16: torch.Tensor, sampler: str) -> None:
    config = {**TINY, "steps": 2, "batch_size": 16, "sampler": sampler, "sample_batch_size": 4}
    trainer = DDPMTrainer(config, device="cpu")
    trainer.train(None, digits16)
    images = trainer.sample(6, seed=3)  # 2 chunks of <= 4
    assert images.dtype == torch.uint8 and images.shape == (6, 1, 16, 16) and images.device.type == "cpu"
    assert torch.equal(images, trainer.sample(6, seed=3))
    assert not torch.equal(images, trainer.sample(6, seed=4))
    assert trainer.sample(2, seed=3, inference_steps=2).shape == (2, 1, 16, 16)
    assert isinstance(trainer.sampling_scheduler(), DDIMScheduler if sampler == "ddim" else DDPMScheduler)


def test_sample_matches_diffusers_ddpm_pipeline_on_ema_weights(digits16: torch.Tensor) -> None:
    trainer = DDPMTrainer({**TINY, "steps": 3, "batch_size": 16}, device="cpu")
    trainer.train(None, digits16)
    pipeline = trainer.pipeline()
    assert isinstance(pipeline, DDPMPipeline)
    pipeline.set_progress_bar_config(disable=True)
    output = pipeline(batch_size=4, generator=torch.Generator().manual_seed(5), num_inference_steps=5, output_type="np")
    expected = torch.from_numpy(output.images).permute(0, 3, 1, 2)
    assert torch.equal(trainer.sample(4, seed=5), (expected * 255).round().to(torch.uint8))


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
def test_other_prediction_types_train(digits16: torch.Tensor, prediction_type: str) -> None:
    trainer = DDPMTrainer({**TINY, "steps": 2, "batch_size": 16, "prediction_type": prediction_type}, device="cpu")
    result = trainer.train(None, digits16)
    assert len(result.losses) == 2 and all(math.isfinite(loss) for loss in result.losses)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"block_out_channels": (12, 32)}, "multiple of norm_num_groups=8"),
        ({"sample_size": 17}, r"sample_size=17 must be divisible by 2\*\*\(len\(block_out_channels\)-1\)=2"),
        ({"prediction_type": "noise"}, "prediction_type: Input should be 'epsilon', 'v_prediction' or 'sample'"),
        ({"attention_levels": (2,)}, r"attention_levels \[2\] out of range; allowed values: 0..1"),
        ({"warmup_steps": 100, "steps": 50}, "warmup_steps=100 must be < steps=50"),
        ({"learning_rate": 0}, "learning_rate: Input should be greater than 0"),
        ({"lr": 0.1}, "lr: Extra inputs are not permitted"),
    ],
)
def test_invalid_params_name_the_field(params: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        DDPMTrainer({**TINY, **params}, device="cpu")


def test_data_must_match_params_and_range(digits16: torch.Tensor) -> None:
    trainer = DDPMTrainer({**TINY, "steps": 1, "warmup_steps": 0}, device="cpu")
    with pytest.raises(TrainingDataError, match=r"expected shape N x 1 x 16 x 16 .*got \(4, 3, 16, 16\)"):
        trainer.train(None, torch.zeros(4, 3, 16, 16))
    with pytest.raises(TrainingDataError, match=r"values must lie in \[-1, 1\]"):
        trainer.train(None, digits16 * 255)
    with pytest.raises(TrainingDataError, match="batch_size=32"):
        trainer.train(None, digits16[:10])
