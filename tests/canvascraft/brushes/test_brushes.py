"""Brushes: parameter ranges, determinism per seed, order, composition, and what each brush does."""

from __future__ import annotations

import pytest
import torch

from canvascraft.brushes import BRUSHES, BrushStack, build_brush
from canvascraft.errors import ParameterError, UnknownComponentError


def image(seed: int = 0, channels: int = 3, size: int = 24) -> torch.Tensor:
    return torch.rand(channels, size, size, generator=torch.Generator().manual_seed(seed))


def test_builtin_brushes_are_registered() -> None:
    assert {
        "resize",
        "center_crop",
        "grayscale",
        "rgb",
        "normalize",
        "random_flip",
        "color_jitter",
        "gaussian_noise",
        "watercolor",
    } <= set(BRUSHES.names())


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("watercolor", {"radius": 10.5}, "radius"),
        ("watercolor", {"radius": -1}, "radius"),
        ("gaussian_noise", {"noise_ratio": 1.2}, "noise_ratio"),
        ("resize", {"size": 0}, "size"),
        ("resize", {}, "size"),
        ("random_flip", {"p": 2}, "p"),
        ("random_flip", {"direction": "diagonal"}, "direction"),
        ("color_jitter", {"hue": 0.7}, "hue"),
        ("grayscale", {"channels": 2}, "channels"),
        ("normalize", {"mean": [0.5, 0.5], "std": [0.5]}, "std"),
    ],
)
def test_parameter_ranges_are_enforced(name: str, params: dict, field: str) -> None:
    with pytest.raises(ParameterError) as caught:
        build_brush(name, params)
    assert name in str(caught.value) and field in str(caught.value)


def test_unknown_brush_names_allowed_values() -> None:
    with pytest.raises(UnknownComponentError) as caught:
        build_brush("oil_paint")
    assert "watercolor" in str(caught.value)


def test_random_stack_is_deterministic_per_seed_and_key() -> None:
    stack = BrushStack.from_spec(
        [{"name": "random_flip", "params": {"p": 0.5}}, {"name": "gaussian_noise", "params": {"noise_ratio": 0.1}}]
    )
    x = image()
    first = stack(x, seed=3, key="abc")
    assert torch.equal(first, stack(x, seed=3, key="abc"))
    assert not torch.equal(first, stack(x, seed=4, key="abc"))
    assert not torch.equal(first, stack(x, seed=3, key="abd"))


def test_stack_does_not_disturb_global_rng() -> None:
    stack = build_brush("gaussian_noise", {"noise_ratio": 0.1}) + build_brush("random_flip")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    stack(image(), seed=1, key="k")
    assert torch.equal(torch.rand(3), expected)


def test_composition_keeps_order() -> None:
    resize, crop = build_brush("resize", {"size": 12}), build_brush("center_crop", {"size": 8})
    x = image(size=24)
    resize_then_crop = (resize + crop)(x, seed=0, key="k")
    crop_then_resize = (crop + resize)(x, seed=0, key="k")
    assert resize_then_crop.shape == (3, 8, 8) and crop_then_resize.shape == (3, 12, 12)
    assert [b.name for b in (resize + crop + BrushStack([build_brush("rgb")])).brushes] == [
        "resize",
        "center_crop",
        "rgb",
    ]


def test_stack_hash_tracks_params_and_order() -> None:
    a = BrushStack.from_spec(
        [{"name": "resize", "params": {"size": 16}}, {"name": "watercolor", "params": {"radius": 1}}]
    )
    same = BrushStack.from_spec(
        [{"name": "resize", "params": {"size": 16}}, {"name": "watercolor", "params": {"radius": 1.0}}]
    )
    other = BrushStack.from_spec(
        [{"name": "resize", "params": {"size": 16}}, {"name": "watercolor", "params": {"radius": 2}}]
    )
    swapped = BrushStack(reversed(a.brushes))
    assert a.stack_hash() == same.stack_hash()
    assert len({a.stack_hash(), other.stack_hash(), swapped.stack_hash()}) == 3


def test_gaussian_noise_std_matches_ratio() -> None:
    x = torch.full((3, 64, 64), 0.5)
    noisy = BrushStack([build_brush("gaussian_noise", {"noise_ratio": 0.1})])(x, seed=0, key="k")
    assert abs(float((noisy - x).std()) - 0.1) < 0.01


def test_watercolor_blurs_and_radius_zero_is_identity() -> None:
    x = (torch.arange(32).repeat(32, 1) % 2).float().expand(3, 32, 32).clone()  # vertical stripes
    blurred = BrushStack([build_brush("watercolor", {"radius": 2.0})])(x, seed=0, key="k")
    assert float(blurred.std()) < 0.1 * float(x.std())
    assert torch.equal(BrushStack([build_brush("watercolor", {"radius": 0})])(x, seed=0, key="k"), x)


def test_grayscale_rgb_and_normalize() -> None:
    x = image()
    gray = BrushStack([build_brush("grayscale")])(x, seed=0, key="k")
    assert gray.shape == (1, 24, 24)
    rgb = BrushStack([build_brush("rgb")])(gray, seed=0, key="k")
    assert rgb.shape == (3, 24, 24) and torch.equal(rgb[0], rgb[2])
    normalized = BrushStack([build_brush("normalize")])(torch.ones(1, 4, 4), seed=0, key="k")
    assert torch.allclose(normalized, torch.ones(1, 4, 4))  # (1 - 0.5) / 0.5


def test_rgb_repeats_one_channel_into_a_new_tensor_and_keeps_three() -> None:
    rgb = BrushStack([build_brush("rgb")])
    gray = image(channels=1)
    out = rgb(gray, seed=0, key="k")
    assert torch.equal(out, gray.expand(3, -1, -1)) and out.dtype == torch.float32
    out[0, 0, 0] = -1.0  # a copy, not a view of the input: later in-place brushes cannot write through to it
    assert float(gray[0, 0, 0]) != -1.0
    colour = image(channels=3)
    assert torch.equal(rgb(colour, seed=0, key="k"), colour)


def test_normalize_channel_mismatch_is_a_clear_error() -> None:
    stack = BrushStack([build_brush("normalize", {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]})])
    with pytest.raises(ValueError, match="1 channels but mean/std give 3"):
        stack(torch.ones(1, 4, 4), seed=0, key="k")
