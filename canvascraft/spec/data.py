"""The data sections: where images come from and what ingest accepts, and the features (palettes, filters)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from canvascraft.spec.base import ComponentSpec, SpecSection, require_s3_uri

ImageFormat = Literal["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"]
ImageMode = Literal["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F"]
FilterOp = Literal[">=", ">", "<=", "<", "==", "!="]


def _default_formats() -> list[ImageFormat]:
    """The formats ingest accepts unless the spec says otherwise."""
    return ["PNG", "JPEG", "WEBP"]


def _default_modes() -> list[ImageMode]:
    """The Pillow modes ingest accepts unless the spec says otherwise."""
    return ["L", "LA", "P", "RGB", "RGBA"]


class DataSpec(SpecSection):
    """Where the images come from and what ingest accepts."""

    source: str = Field(description="s3://bucket/prefix of the training images.")
    extra_sources: list[str] = Field(default_factory=list, description="More prefixes ingested with source.")
    min_valid_count: int = Field(default=1, ge=1, description="Fail ingest below this many valid images.")
    min_valid_fraction: float = Field(default=0.5, ge=0.0, le=1.0, description="Fail below this valid share.")
    max_pixels: int = Field(default=4096 * 4096, ge=1, le=20000 * 20000, description="Decompression-bomb guard.")
    max_bytes: int = Field(default=50 * 1024 * 1024, ge=1, description="Largest object accepted, in bytes.")
    min_side: int = Field(default=4, ge=1, le=4096, description="Smallest accepted image side, in pixels.")
    allowed_formats: list[ImageFormat] = Field(default_factory=_default_formats)
    allowed_modes: list[ImageMode] = Field(default_factory=_default_modes)

    @field_validator("source", "extra_sources")
    @classmethod
    def _s3_uri(cls, value: str | list[str]) -> str | list[str]:
        for uri in [value] if isinstance(value, str) else value:
            require_s3_uri(uri)
        return value


class FilterSpec(SpecSection):
    """A predicate on one feature used to curate the training set."""

    feature: str
    op: FilterOp
    value: float


class FeaturesSpec(SpecSection):
    """Feature palettes served by Feast and optional training-set filters."""

    palettes: list[ComponentSpec] = Field(default_factory=list)
    filters: list[FilterSpec] = Field(default_factory=list)
    image_size: int = Field(default=32, ge=3, le=1024, description="Raw images are resized to this before palettes.")
