"""The resize brush keeps a bicubic resize within the input's value range (bicubic overshoots near edges)."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from canvascraft.brushes import BrushStack


def _edge_image() -> torch.Tensor:
    """A hard black/white edge: the case where a bicubic kernel's negative lobes overshoot."""
    image = torch.zeros(1, 28, 28)
    image[:, :, 14:] = 1.0
    return image


def test_plain_bicubic_overshoots_so_the_clamp_is_needed() -> None:
    out = v2.Resize(32, interpolation=v2.InterpolationMode.BICUBIC, antialias=True)(_edge_image())
    assert float(out.min()) < 0.0 or float(out.max()) > 1.0


def test_bicubic_resize_then_normalize_stays_in_the_trainers_range() -> None:
    stack = BrushStack.from_spec(
        [
            {"name": "resize", "params": {"size": 32, "interpolation": "bicubic"}},
            {"name": "normalize", "params": {"mean": [0.5], "std": [0.5]}},
        ]
    )
    out = stack(_edge_image(), seed=0, key="edge")
    assert out.shape[-2:] == (32, 32)
    assert float(out.min()) >= -1.0 and float(out.max()) <= 1.0


def test_bilinear_resize_is_left_as_torchvision_gives_it() -> None:
    image = torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(0))
    stack = BrushStack.from_spec([{"name": "resize", "params": {"size": 32}}])
    expected = v2.Resize(32, interpolation=v2.InterpolationMode.BILINEAR, antialias=True)(image)
    assert torch.equal(stack(image, seed=0, key="x"), expected)
