"""Image grids of generated samples (PNG), via torchvision.utils."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Write uint8 N x C x H x W images as one PNG grid (``nrow`` defaults to a square-ish layout)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nrow = nrow or max(1, math.ceil(math.sqrt(len(images))))
    grid = make_grid(images.float() / 255.0, nrow=nrow, padding=1, pad_value=1.0)
    save_image(grid, str(path))
    return path
