"""Preprocessing brushes: registry, factory and the built-in brushes (imported here to register them)."""

from canvascraft.brushes import color, geometry, noise, watercolor  # noqa: F401  (registration side effect)
from canvascraft.brushes.base import (
    BRUSH_ENTRY_POINT_GROUP,
    BRUSHES,
    Brush,
    BrushStack,
    build_brush,
)

__all__ = ["BRUSHES", "BRUSH_ENTRY_POINT_GROUP", "Brush", "BrushStack", "build_brush"]
