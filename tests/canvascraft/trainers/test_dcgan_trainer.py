"""DCGAN trainer: samples move towards real digits, runs are seeded, checkpoints resume exactly."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from trainer_helpers import assert_same_state, window_means

from canvascraft.errors import ParameterError
from canvascraft.trainers import DCGANTrainer, load_trainer
from canvascraft.trainers.dcgan import Discriminator, Generator

SMALL = {"sample_size": 16, "channels": 1, "g_features": 32, "d_features": 32, "batch_size": 64, "seed": 0}


def pixel_mmd(a: torch.Tensor, b: torch.Tensor) -> float:
    """Squared MMD with a Gaussian kernel (median-distance bandwidth) between two image sets, in pixel space."""
    a, b = a.flatten(1).float(), b.flatten(1).float()
    xx, yy, xy = torch.cdist(a, a) ** 2, torch.cdist(b, b) ** 2, torch.cdist(a, b) ** 2
    bandwidth = torch.cat([xx.flatten(), yy.flatten(), xy.flatten()]).median()
    kernel = lambda d: torch.exp(-d / bandwidth)
    return float(kernel(xx).mean() + kernel(yy).mean() - 2 * kernel(xy).mean())


def as_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 samples back to [-1, 1]."""
    return images.float() / 127.5 - 1.0


def test_training_moves_samples_towards_real_digits(digits16: torch.Tensor) -> None:
    # GAN losses are not a quality measure (G's loss typically rises as D improves), so learning is judged the
    # honest way: a distribution distance between samples and held-out real digits must drop, and D's loss must
    # fall below chance level (2 ln 2) while it separates real from fake.
    train, held_out = digits16[:1500], digits16[1500:1756]
    trainer = DCGANTrainer({**SMALL, "steps": 250}, device="cpu")
    before = pixel_mmd(as_unit_range(trainer.sample(256, seed=123)), held_out)
    result = trainer.train(None, train)
    after = pixel_mmd(as_unit_range(trainer.sample(256, seed=123)), held_out)
    assert all(math.isfinite(loss) for loss in result.losses)
    assert after < 0.5 * before, (before, after)
    assert result.metrics["loss_d"] < 2 * math.log(2)
    assert result.final_loss == pytest.approx(window_means(result.losses, 10)[1])
    assert result.images_per_sec > 0


def test_same_seed_same_loss_curve_other_seed_differs(digits16: torch.Tensor) -> None:
    config = {**SMALL, "steps": 6, "batch_size": 16}
    a = DCGANTrainer(config, device="cpu").train(None, digits16)
    b = DCGANTrainer(config, device="cpu").train(None, digits16)
    c = DCGANTrainer({**config, "seed": 1}, device="cpu").train(None, digits16)
    assert a.losses == b.losses
    assert a.losses != c.losses


def test_checkpoint_roundtrip_and_exact_resume(digits16: torch.Tensor, tmp_path: Path) -> None:
    config = {**SMALL, "steps": 8, "batch_size": 16, "checkpoint_every": 4}
    uninterrupted = DCGANTrainer(config, device="cpu")
    full = uninterrupted.train(None, digits16)

    first = DCGANTrainer(config, device="cpu")
    first.train(None, digits16, checkpoint_root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000004", "step_00000008"]
    assert {p.name for p in (tmp_path / "step_00000004").iterdir()} == {
        "canvascraft_trainer.json",
        "generator.safetensors",
        "discriminator.safetensors",
        "training_state.json",
        "training_state.safetensors",
    }
    restored = load_trainer(tmp_path / "step_00000008", device="cpu")
    assert isinstance(restored, DCGANTrainer) and restored.step == 8
    assert_same_state(first.generator.state_dict(), restored.generator.state_dict(), "generator")
    assert_same_state(first.discriminator.state_dict(), restored.discriminator.state_dict(), "discriminator")
    assert_same_state(first.optimizer_g.state_dict(), restored.optimizer_g.state_dict(), "optimizer_g")
    assert_same_state(first.optimizer_d.state_dict(), restored.optimizer_d.state_dict(), "optimizer_d")
    assert torch.equal(first.rng.get_state(), restored.rng.get_state())

    resumed = load_trainer(tmp_path / "step_00000004", device="cpu")
    assert resumed.step == 4
    rest = resumed.train(config, digits16)
    assert rest.losses == full.losses[4:]
    assert_same_state(uninterrupted.generator.state_dict(), resumed.generator.state_dict(), "generator")


def test_sample_is_uint8_of_the_right_shape_and_deterministic(digits16: torch.Tensor) -> None:
    trainer = DCGANTrainer({**SMALL, "steps": 2, "batch_size": 16}, device="cpu")
    trainer.train(None, digits16)
    images = trainer.sample(5, seed=3)
    assert images.dtype == torch.uint8 and images.shape == (5, 1, 16, 16) and images.device.type == "cpu"
    assert torch.equal(images, trainer.sample(5, seed=3))
    assert not torch.equal(images, trainer.sample(5, seed=4))
    # Sampling uses BN running statistics (eval mode): it must not change the model.
    assert trainer.generator.training is False
    assert torch.equal(images, trainer.sample(5, seed=3))


@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_architecture_scales_with_sample_size(size: int) -> None:
    generator, discriminator = Generator(100, 8, 3, size), Discriminator(8, 3, size)
    images = generator(torch.randn(2, 100, 1, 1))
    assert images.shape == (2, 3, size, size)
    assert discriminator(images).shape == (2,)


def test_invalid_params_name_the_field() -> None:
    with pytest.raises(ParameterError, match="sample_size must be one of 8, 16, 32, 64"):
        DCGANTrainer({**SMALL, "sample_size": 24}, device="cpu")
    with pytest.raises(ParameterError, match="adam_beta1: Input should be less than 1"):
        DCGANTrainer({**SMALL, "adam_beta1": 1.5}, device="cpu")
