"""Geometric brushes: resize, center-crop and random flip (torchvision ``v2``)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torchvision.transforms import v2

from canvascraft.brushes.base import BRUSHES, Brush


@BRUSHES.register("resize")
class ResizeBrush(Brush):
    """Resize the shorter side to ``size`` pixels (aspect ratio kept)."""

    name = "resize"
    size: int = Field(ge=1, le=4096)
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    antialias: bool = True

    def transform(self) -> torch.nn.Module:
        """``v2.Resize`` with an explicit interpolation mode (bicubic kept within the input's value range)."""
        mode = v2.InterpolationMode(self.interpolation)
        resize = v2.Resize(self.size, interpolation=mode, antialias=self.antialias)
        return _WithinInputRange(resize) if self.interpolation == "bicubic" else resize


class _WithinInputRange(torch.nn.Module):
    """Clamp a transform's output to its input's value range.

    Bicubic interpolation of a float image overshoots near edges (its kernel has negative lobes): a 28 -> 32 resize
    of Fashion-MNIST in [0, 1] gives about -0.09..1.05, which the normalize brush turns into values outside the
    [-1, 1] every trainer requires. Pillow's and torchvision's uint8 paths clamp by saturation; this does the same
    for float images, in whatever range the input has.
    """

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """The inner transform's output, clamped to ``[image.min(), image.max()]``."""
        low, high = torch.aminmax(image)
        return self.inner(image).clamp(low, high)


@BRUSHES.register("center_crop")
class CenterCropBrush(Brush):
    """Crop the central ``size`` x ``size`` square."""

    name = "center_crop"
    size: int = Field(ge=1, le=4096)

    def transform(self) -> torch.nn.Module:
        """``v2.CenterCrop``."""
        return v2.CenterCrop(self.size)


@BRUSHES.register("random_flip")
class RandomFlipBrush(Brush):
    """Flip with probability ``p`` along ``direction``."""

    name = "random_flip"
    random = True
    p: float = Field(default=0.5, ge=0.0, le=1.0)
    direction: Literal["horizontal", "vertical"] = "horizontal"

    def transform(self) -> torch.nn.Module:
        """``v2.RandomHorizontalFlip`` or ``v2.RandomVerticalFlip``."""
        cls = v2.RandomHorizontalFlip if self.direction == "horizontal" else v2.RandomVerticalFlip
        return cls(p=self.p)
