"""Gaussian-noise brush (the seeds' ``GaussianNoiseBrush`` with ``NoiseRatio``)."""

from __future__ import annotations

import torch
from pydantic import Field
from torchvision.transforms import v2

from canvascraft.brushes.base import BRUSHES, Brush


@BRUSHES.register("gaussian_noise")
class GaussianNoiseBrush(Brush):
    """Add zero-mean noise with standard deviation ``noise_ratio`` (of the [0, 1] range)."""

    name = "gaussian_noise"
    random = True
    noise_ratio: float = Field(default=0.05, ge=0.0, le=1.0)
    clip: bool = True

    def transform(self) -> torch.nn.Module:
        """``v2.GaussianNoise``."""
        return v2.GaussianNoise(mean=0.0, sigma=self.noise_ratio, clip=self.clip)
