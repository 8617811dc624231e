"""DCGAN trainer (Radford, Metz & Chintala 2016, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks"), adapted from 64 px to 8-64 px by changing the number of stride-2 stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from safetensors.torch import load_file, save_file
from torch import nn

from canvascraft.device import autocast, autocast_dtype, multi_tensor_kwargs
from canvascraft.trainers.base import TRAINERS, TrainConfig, Trainer, to_uint8

GENERATOR_FILE = "generator.safetensors"
DISCRIMINATOR_FILE = "discriminator.safetensors"


class DCGANConfig(TrainConfig):
    """Latent size, widths and Adam settings of the DCGAN trainer (defaults: Radford et al. 2016, Sec. 4)."""

    sample_size: int = Field(default=32, ge=8, le=64, description="Image side: 8, 16, 32 or 64 pixels.")
    latent_dim: int = Field(default=100, ge=1, le=1024, description="Size of z (100 in the paper).")
    g_features: int = Field(default=64, ge=4, le=1024, description="Generator width at the last hidden stage.")
    d_features: int = Field(default=64, ge=4, le=1024, description="Discriminator width at the first stage.")
    learning_rate_g: float = Field(default=2e-4, gt=0.0, le=1.0, description="Generator Adam LR (paper: 0.0002).")
    learning_rate_d: float = Field(default=2e-4, gt=0.0, le=1.0, description="Discriminator Adam LR.")
    adam_beta1: float = Field(default=0.5, ge=0.0, lt=1.0, description="Paper: 0.5 (0.9 oscillated).")
    adam_beta2: float = Field(default=0.999, ge=0.0, lt=1.0)
    init_std: float = Field(default=0.02, gt=0.0, le=1.0, description="N(0, std) weight init (paper: 0.02).")

    @field_validator("sample_size")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value not in (8, 16, 32, 64):
            raise ValueError(f"sample_size must be one of 8, 16, 32, 64 (4 x 4 doubled per stage), got {value}")
        return value


def _stages(sample_size: int) -> int:
    """Stride-2 stages between the 4 x 4 core and ``sample_size`` (4 for the paper's 64 px)."""
    return (sample_size // 4).bit_length() - 1


class Generator(nn.Module):
    """z -> 4x4 by a 4x4 transposed conv, then stride-2 transposed convs halving width; BN + ReLU, tanh output."""

    def __init__(self, latent_dim: int, features: int, channels: int, sample_size: int) -> None:
        super().__init__()
        stages = _stages(sample_size)
        width = features * 2 ** (stages - 1)
        layers: list[nn.Module] = [  # "project and reshape" of Fig. 1 as a 1x1 -> 4x4 transposed conv
            nn.ConvTranspose2d(latent_dim, width, 4, 1, 0, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
        ]
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        # No batchnorm on the output layer; tanh output (Sec. 3 architecture guidelines).
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """Stride-2 convs doubling width with LeakyReLU(0.2), BN except on the input layer, 4x4 conv to one logit."""

    def __init__(self, features: int, channels: int, sample_size: int) -> None:
        super().__init__()
        stages = _stages(sample_size)
        layers: list[nn.Module] = []
        width_in, width = channels, features
        for stage in range(stages):
            layers.append(nn.Conv2d(width_in, width, 4, 2, 1, bias=False))
            if stage > 0:  # no batchnorm on the discriminator input layer (Sec. 3)
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            width_in, width = width, width * 2
        # No sigmoid: BCE-with-logits is the numerically stable form of the paper's sigmoid + BCE.
        layers.append(nn.Conv2d(width_in, 1, 4, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def init_weights(module: nn.Module, std: float) -> None:
    """Radford et al. 2016, Sec. 4: weights from N(0, 0.02); BN scale from N(1, 0.02), shift 0 (PyTorch example)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, std)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, std)
        nn.init.zeros_(module.bias)


@TRAINERS.register("dcgan")
class DCGANTrainer(Trainer[DCGANConfig]):
    """Adversarial training with the non-saturating generator loss (Goodfellow et al. 2014, Sec. 3)."""

    name = "dcgan"
    config_cls = DCGANConfig

    def _build(self, config: DCGANConfig) -> None:
        self.generator = Generator(config.latent_dim, config.g_features, config.channels, config.sample_size)
        self.discriminator = Discriminator(config.d_features, config.channels, config.sample_size)
        for net in (self.generator, self.discriminator):
            net.apply(lambda m: init_weights(m, config.init_std))
            net.to(self.device).to(memory_format=self.memory_format)
        betas = (config.adam_beta1, config.adam_beta2)
        flags = multi_tensor_kwargs(self.device)  # fused on CUDA, foreach on CPU (see canvascraft/device.py)
        self.optimizer_g = torch.optim.Adam(
            self.generator.parameters(), lr=config.learning_rate_g, betas=betas, **flags
        )
        self.optimizer_d = torch.optim.Adam(
            self.discriminator.parameters(), lr=config.learning_rate_d, betas=betas, **flags
        )
        self.amp_dtype = autocast_dtype(self.device) if config.mixed_precision else None
        fp16 = self.amp_dtype == torch.float16
        self.scaler_g = torch.amp.GradScaler("cuda") if fp16 else None
        self.scaler_d = torch.amp.GradScaler("cuda") if fp16 else None

    def _latents(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """z ~ N(0, I) of shape n x latent_dim x 1 x 1 drawn on CPU, then moved to the device."""
        z = torch.randn((n, self._require_config().latent_dim, 1, 1), generator=generator)
        return z.to(self.device, non_blocking=True)

    @staticmethod
    def _update(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
        """Backward + step (+ loss scaling for fp16), then clear gradients."""
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def _train_step(self, batches: list[torch.Tensor]) -> dict[str, float]:
        """One D step on real + fake, then one G step, both with BCE-with-logits (PyTorch DCGAN example order)."""
        (real,) = batches
        self.generator.train()
        self.discriminator.train()
        z = self._latents(real.shape[0], self.rng)
        ones = torch.ones(real.shape[0], device=self.device)
        zeros = torch.zeros(real.shape[0], device=self.device)

        # Discriminator: maximise log D(x) + log(1 - D(G(z)))  (Goodfellow et al. 2014, Eq. 1)
        with autocast(self.device, self.amp_dtype):
            fake = self.generator(z)
            logits_real = self.discriminator(real)
            logits_fake = self.discriminator(fake.detach())
        loss_d = F.binary_cross_entropy_with_logits(logits_real.float(), ones) + F.binary_cross_entropy_with_logits(
            logits_fake.float(), zeros
        )
        self._update(loss_d, self.optimizer_d, self.scaler_d)

        # Generator: non-saturating loss, maximise log D(G(z)) instead of minimising log(1 - D(G(z)))
        self.discriminator.requires_grad_(False)  # D is a fixed critic here: no weight gradients to compute
        try:
            with autocast(self.device, self.amp_dtype):
                logits_gen = self.discriminator(fake)
            loss_g = F.binary_cross_entropy_with_logits(logits_gen.float(), ones)
            self._update(loss_g, self.optimizer_g, self.scaler_g)
        finally:
            self.discriminator.requires_grad_(True)

        return {
            "loss": float(loss_g.detach()),  # GAN losses do not measure sample quality: tune on FID/KID, not on this
            "loss_g": float(loss_g.detach()),
            "loss_d": float(loss_d.detach()),
            "d_real": float(torch.sigmoid(logits_real.detach().float()).mean()),
            "d_fake": float(torch.sigmoid(logits_fake.detach().float()).mean()),
        }

    def _extra_metrics(self) -> dict[str, float]:
        return {"lr_g": self.optimizer_g.param_groups[0]["lr"], "lr_d": self.optimizer_d.param_groups[0]["lr"]}

    @torch.no_grad()
    def sample(self, n: int, seed: int, *, inference_steps: int | None = None) -> torch.Tensor:
        """``n`` uint8 images from G in eval mode (BatchNorm running statistics), z drawn from ``seed``.

        ``inference_steps`` is ignored: G maps z to an image in one pass.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.generator.eval()
        z = self._latents(n, torch.Generator().manual_seed(seed))
        with autocast(self.device, self.amp_dtype):
            images = self.generator(z)
        return to_uint8(images)

    # --- checkpoints: generator.safetensors, discriminator.safetensors + training_state ---------------------

    def _save_weights(self, directory: Path) -> None:
        for net, filename in ((self.generator, GENERATOR_FILE), (self.discriminator, DISCRIMINATOR_FILE)):
            tensors = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
            save_file(tensors, str(directory / filename), metadata={"format": "pt", "trainer": self.name})

    def _load_weights(self, directory: Path) -> None:
        for net, filename in ((self.generator, GENERATOR_FILE), (self.discriminator, DISCRIMINATOR_FILE)):
            net.load_state_dict(load_file(str(directory / filename), device="cpu"))

    def _training_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "optimizer_g": self.optimizer_g.state_dict(),
            "optimizer_d": self.optimizer_d.state_dict(),
        }
        if self.scaler_g is not None and self.scaler_d is not None:
            state["grad_scaler_g"] = self.scaler_g.state_dict()
            state["grad_scaler_d"] = self.scaler_d.state_dict()
        return state

    def _load_training_state(self, state: dict[str, Any]) -> None:
        self.optimizer_g.load_state_dict(state["optimizer_g"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        if self.scaler_g is not None and self.scaler_d is not None and "grad_scaler_g" in state:
            self.scaler_g.load_state_dict(state["grad_scaler_g"])
            self.scaler_d.load_state_dict(state["grad_scaler_d"])
