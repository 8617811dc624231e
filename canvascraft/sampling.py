"""Image grids of generated samples (PNG), via torchvision.utils."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

DISPLAY_SIDE = 32  # tiles smaller than this are enlarged for viewing (an 8 px digit is 8 px on screen otherwise)


def display_scale(side: int) -> int:
    """Integer enlargement that makes a ``side``-pixel tile at least ``DISPLAY_SIDE`` pixels (1 for larger tiles)."""
    return max(1, DISPLAY_SIDE // side)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 1) -> Path:
    """Write uint8 N x C x H x W images as one PNG grid (``nrow`` defaults to a square-ish layout).

    ``scale`` enlarges every pixel to a ``scale x scale`` block (nearest neighbour: no invented detail).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if scale > 1:
        images = images.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    nrow = nrow or max(1, math.ceil(math.sqrt(len(images))))
    grid = make_grid(images.float() / 255.0, nrow=nrow, padding=1, pad_value=1.0)
    save_image(grid, str(path))
    return path
