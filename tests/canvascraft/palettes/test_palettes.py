"""Palettes: values against hand-computed ones on synthetic images, grayscale handling, composition and errors."""

from __future__ import annotations

import math

import pytest
import torch

from canvascraft.errors import ParameterError, SpecError, UnknownComponentError
from canvascraft.palettes import PALETTES, PaletteSet, build_palette, compute_palette
from canvascraft.spec import load_spec

STATS = ("brightness", "contrast", "saturation", "colorfulness", "sharpness", "entropy", "edge_density")


def flat(rgb: tuple[float, float, float], size: int = 16, batch: int = 2) -> torch.Tensor:
    return torch.tensor(rgb).view(1, 3, 1, 1).expand(batch, 3, size, size).clone()


def checkerboard(size: int = 16, cell: int = 4) -> torch.Tensor:
    """1 x 1 x size x size, cells of ``cell`` pixels alternating 0 / 1."""
    index = torch.arange(size) // cell
    return ((index.view(-1, 1) + index.view(1, -1)) % 2).float().view(1, 1, size, size)


def stats(images: torch.Tensor, **params: float) -> dict[str, float]:
    out = compute_palette(build_palette("image_stats", params), images)
    return {k: v[0].item() for k, v in out.items()}


def test_builtin_palettes_are_registered_with_typed_columns() -> None:
    assert {"image_stats", "rgb_histogram"} <= set(PALETTES.names())
    assert list(build_palette("image_stats").feature_names()) == list(STATS)
    names = build_palette("rgb_histogram", {"bins": 8}).feature_names()
    assert list(names)[:2] == ["hist_r_00", "hist_r_01"] and list(names)[-1] == "hist_b_07" and len(names) == 24
    assert set(names.values()) == {"float32"}
    wide = list(build_palette("rgb_histogram", {"bins": 256}).feature_names())
    assert wide[0] == "hist_r_000" and wide[-1] == "hist_b_255"


def test_flat_colour_has_zero_contrast_sharpness_entropy_edges_and_one_bin_histograms() -> None:
    images = flat((0.2, 0.4, 0.6))
    values = stats(images)
    assert values["brightness"] == pytest.approx(0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6, abs=1e-6)  # 0.363
    for name in ("contrast", "sharpness", "entropy", "edge_density"):
        assert values[name] == pytest.approx(0.0, abs=1e-6), name
    assert values["saturation"] == pytest.approx((0.6 - 0.2) / 0.6, abs=1e-6)
    # Hasler-Suesstrunk on a flat image: no spread, 0.3 * |(mean rg, mean yb)| = 0.3 * |(-0.2, -0.3)|
    assert values["colorfulness"] == pytest.approx(0.3 * math.sqrt(0.2**2 + 0.3**2), abs=1e-6)

    hist = compute_palette(build_palette("rgb_histogram", {"bins": 8}), images)
    # 0.2 * 8 = 1.6 -> bin 1; 0.4 * 8 = 3.2 -> bin 3; 0.6 * 8 = 4.8 -> bin 4
    nonzero = {k: v.tolist() for k, v in hist.items() if v.abs().sum() > 0}
    assert nonzero == {"hist_r_01": [1.0, 1.0], "hist_g_03": [1.0, 1.0], "hist_b_04": [1.0, 1.0]}


def test_checkerboard_edge_density_contrast_and_entropy() -> None:
    board = checkerboard(16, 4)
    # Valid 3x3 Sobel: 14 x 14 = 196 pixels. A pixel is on an edge when its 3x3 window crosses a cell boundary:
    # rows/columns {3, 4, 7, 8, 11, 12} of 1..14. Crossing one boundary: magnitude 1.0; two: sqrt(0.5^2 + 0.5^2).
    # Edges at threshold 0.2: 196 - 8 * 8 = 132; at 0.8 only single-boundary pixels: 6 * 8 + 8 * 6 = 96.
    values = stats(board)
    assert values["edge_density"] == pytest.approx(132 / 196, abs=1e-6)
    assert stats(board, edge_threshold=0.8)["edge_density"] == pytest.approx(96 / 196, abs=1e-6)
    assert values["brightness"] == pytest.approx(0.5) and values["contrast"] == pytest.approx(0.5)
    assert values["entropy"] == pytest.approx(1.0, abs=1e-6)  # two equally likely levels
    assert values["saturation"] == 0.0 and values["colorfulness"] == 0.0


def test_sharpness_is_variance_of_the_laplacian() -> None:
    dot = torch.zeros(1, 1, 5, 5)
    dot[0, 0, 2, 2] = 1.0
    # Valid 3x3 Laplacian over 3 x 3 positions: centre -4, its 4 neighbours +1, corners 0 -> mean 0, var 20/9.
    assert stats(dot)["sharpness"] == pytest.approx(20 / 9, abs=1e-6)


def test_entropy_of_256_equally_likely_levels_is_8_bits() -> None:
    ramp = (torch.arange(256, dtype=torch.float32) / 255).view(1, 1, 16, 16)
    assert stats(ramp)["entropy"] == pytest.approx(8.0, abs=1e-5)


def test_grayscale_input_equals_its_rgb_copy() -> None:
    gray = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    palettes = build_palette("image_stats") + build_palette("rgb_histogram", {"bins": 8})
    from_gray = palettes.compute(gray)
    from_rgb = palettes.compute(gray.expand(3, 3, 12, 12))
    for column in palettes.feature_names():
        assert torch.allclose(from_gray[column], from_rgb[column], atol=1e-5), column
    assert torch.equal(from_gray["hist_r_03"], from_gray["hist_b_03"])
    assert torch.equal(from_gray["saturation"], torch.zeros(3))
    assert torch.equal(from_gray["colorfulness"], torch.zeros(3))


def test_histogram_matches_a_per_channel_reference_and_sums_to_one() -> None:
    images = torch.rand(4, 3, 9, 7, generator=torch.Generator().manual_seed(1))
    images[0, 0, 0, 0] = 1.0  # 1.0 belongs to the last bin
    hist = compute_palette(build_palette("rgb_histogram", {"bins": 5}), images)
    for b in range(4):
        for c, channel in enumerate("rgb"):
            expected = torch.histc(images[b, c], bins=5, min=0.0, max=1.0) / 63
            got = torch.stack([hist[f"hist_{channel}_{k:02d}"][b] for k in range(5)])
            assert torch.allclose(got, expected, atol=1e-6)
            assert got.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_palette_set_composes_chunks_and_hashes() -> None:
    images = torch.rand(10, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    palettes = PaletteSet.from_spec([{"name": "image_stats"}, {"name": "rgb_histogram", "params": {"bins": 4}}])
    assert len(palettes) == 2 and len(palettes.feature_names()) == 7 + 12
    whole, chunked = palettes.compute(images), palettes.compute(images, batch_size=3)
    assert all(torch.allclose(whole[k], chunked[k], atol=1e-6) for k in whole) and whole["brightness"].shape == (10,)
    again = build_palette("image_stats") + build_palette("rgb_histogram", {"bins": 4})
    assert again.set_hash() == palettes.set_hash() and again.config() == palettes.config()
    assert build_palette("rgb_histogram", {"bins": 8}).view_name() != build_palette("rgb_histogram").view_name()
    assert palettes.compute(images[:0])["hist_r_00"].shape == (0,)


def test_colliding_columns_are_rejected() -> None:
    with pytest.raises(ParameterError, match="hist_r_00"):
        build_palette("rgb_histogram", {"bins": 8}) + build_palette("rgb_histogram", {"bins": 16})


def test_unknown_palette_names_allowed_values() -> None:
    with pytest.raises(UnknownComponentError) as caught:
        build_palette("hog")
    assert "image_stats" in str(caught.value) and "rgb_histogram" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "params", "field", "hint"),
    [
        ("rgb_histogram", {"bins": 1}, "bins", "greater than or equal to 2"),
        ("rgb_histogram", {"bins": 300}, "bins", "less than or equal to 256"),
        ("rgb_histogram", {"bins": "many"}, "bins", "integer"),
        ("image_stats", {"edge_threshold": 0}, "edge_threshold", "greater than 0"),
        ("image_stats", {"edges": 0.1}, "edges", "Extra inputs"),
    ],
)
def test_bad_params_name_palette_field_and_range(name: str, params: dict, field: str, hint: str) -> None:
    with pytest.raises(ParameterError) as caught:
        build_palette(name, params)
    message = str(caught.value)
    assert name in message and field in message and hint in message


@pytest.mark.parametrize(
    ("images", "hint"),
    [
        (torch.rand(2, 2, 8, 8), "C in (1, 3)"),
        (torch.rand(8, 8), "B x C x H x W"),
        (torch.randint(0, 255, (2, 3, 8, 8)), "float"),
        (torch.rand(2, 3, 8, 8) * 2 - 1.6, "[0, 1]"),
        (torch.rand(2, 3, 8, 8) * 255, "[0, 1]"),
        (torch.rand(2, 3, 2, 8), "at least 3 x 3"),
        (torch.rand(2, 3, 8, 8).index_fill_(2, torch.tensor([3]), float("nan")), "NaN"),
        (torch.rand(2, 3, 8, 8).index_fill_(2, torch.tensor([3]), float("inf")), "[0, 1]"),
    ],
)
def test_bad_images_are_rejected_with_the_reason(images: torch.Tensor, hint: str) -> None:
    with pytest.raises(ParameterError) as caught:
        build_palette("image_stats").__add__(build_palette("rgb_histogram")).compute(images)
    assert hint in str(caught.value)


def test_spec_validation_uses_the_palette_registry() -> None:
    spec = {
        "name": "t",
        "data": {"source": "s3://bucket/prefix"},
        "features": {"palettes": [{"name": "image_stats"}, {"name": "rgb_histogram", "params": {"bins": 999}}]},
    }
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    assert "features.palettes[1].params.bins" in str(caught.value)
    spec["features"]["palettes"][1] = {"name": "sift"}
    with pytest.raises(SpecError, match=r"features\.palettes\[1\]\.name: unknown palette 'sift'"):
        load_spec(spec)
