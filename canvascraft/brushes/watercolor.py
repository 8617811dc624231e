"""Watercolor brush: a Gaussian blur that softens edges."""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torchvision.transforms import v2

from canvascraft.brushes.base import BRUSHES, Brush


@BRUSHES.register("watercolor")
class WatercolorBrush(Brush):
    """Gaussian blur with sigma ``radius`` pixels; radius 0 leaves the image unchanged."""

    name = "watercolor"
    radius: float = Field(default=2.5, ge=0.0, le=10.0)

    def transform(self) -> torch.nn.Module:
        """``v2.GaussianBlur`` with a kernel covering +-3 sigma."""
        if self.radius == 0:
            return v2.Identity()
        kernel = 2 * math.ceil(3 * self.radius) + 1
        return v2.GaussianBlur(kernel_size=kernel, sigma=self.radius)
