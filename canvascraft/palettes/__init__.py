"""Feature palettes: registry, factory and the built-in palettes (imported here to register them)."""

from canvascraft.palettes import image_stats, rgb_histogram  # noqa: F401  (registration side effect)
from canvascraft.palettes.base import (
    PALETTE_ENTRY_POINT_GROUP,
    PALETTES,
    FeatureDType,
    Palette,
    PaletteSet,
    build_palette,
    check_images,
    compute_palette,
)
from canvascraft.palettes.image_stats import ImageStatsPalette
from canvascraft.palettes.rgb_histogram import RGBHistogramPalette

__all__ = [
    "PALETTES",
    "PALETTE_ENTRY_POINT_GROUP",
    "FeatureDType",
    "ImageStatsPalette",
    "Palette",
    "PaletteSet",
    "RGBHistogramPalette",
    "build_palette",
    "check_images",
    "compute_palette",
]
