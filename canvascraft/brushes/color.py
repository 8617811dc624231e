"""Colour brushes: grayscale/RGB conversion, normalisation and colour jitter (torchvision ``v2``)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torchvision.transforms import v2

from canvascraft.brushes.base import BRUSHES, Brush


@BRUSHES.register("grayscale")
class GrayscaleBrush(Brush):
    """Convert to luminance with 1 or 3 output channels."""

    name = "grayscale"
    channels: Literal[1, 3] = 1

    def transform(self) -> torch.nn.Module:
        """``v2.Grayscale``."""
        return v2.Grayscale(num_output_channels=self.channels)


@BRUSHES.register("rgb")
class RGBBrush(Brush):
    """Make every image 3-channel (grayscale inputs are repeated)."""

    name = "rgb"

    def transform(self) -> torch.nn.Module:
        """``v2.RGB``: a 1-channel image becomes 3 equal channels (a copy); a 3-channel image passes unchanged."""
        return v2.RGB()


@BRUSHES.register("normalize")
class NormalizeBrush(Brush):
    """Per-channel ``(x - mean) / std``; the default maps [0, 1] to [-1, 1] as DDPM expects."""

    name = "normalize"
    mean: list[float] = Field(default_factory=lambda: [0.5], min_length=1, max_length=3)
    std: list[float] = Field(default_factory=lambda: [0.5], min_length=1, max_length=3)

    @model_validator(mode="after")
    def _check(self) -> NormalizeBrush:
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} values but std has {len(self.std)}; give the same count")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std values must be > 0, got {self.std}")
        return self

    def transform(self) -> torch.nn.Module:
        """``v2.Normalize`` (a single mean/std broadcasts over channels)."""
        return _BroadcastNormalize(self.mean, self.std)


class _BroadcastNormalize(torch.nn.Module):
    """``v2.Normalize`` that also accepts one value for every channel."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        channels = image.shape[-3]
        mean = self.mean * channels if len(self.mean) == 1 else self.mean
        std = self.std * channels if len(self.std) == 1 else self.std
        if len(mean) != channels:
            raise ValueError(f"normalize brush: image has {channels} channels but mean/std give {len(mean)} values")
        return v2.functional.normalize(image, mean=mean, std=std)


@BRUSHES.register("color_jitter")
class ColorJitterBrush(Brush):
    """Random brightness/contrast/saturation/hue changes."""

    name = "color_jitter"
    random = True
    brightness: float = Field(default=0.0, ge=0.0, le=1.0)
    contrast: float = Field(default=0.0, ge=0.0, le=1.0)
    saturation: float = Field(default=0.0, ge=0.0, le=1.0)
    hue: float = Field(default=0.0, ge=0.0, le=0.5)

    def transform(self) -> torch.nn.Module:
        """``v2.ColorJitter``."""
        return v2.ColorJitter(self.brightness, self.contrast, self.saturation, self.hue)
