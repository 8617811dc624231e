"""Palette contract (per-image feature extractors), the palette registry and the composable ``PaletteSet``.

A palette turns a float batch ``B x C x H x W`` in [0, 1] (C = 1 or 3) into named 1-D feature columns of length B.
Its resolved parameters and ``version`` are hashed into ``view_name()``: the Feast feature view (and the offline
parquet folder) a palette's columns live in, so changing a parameter or the algorithm never mixes old and new rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from canvascraft.errors import ParameterError
from canvascraft.hashing import stable_hash
from canvascraft.registry import Registry, name_and_params, validate_params

PALETTE_ENTRY_POINT_GROUP = "canvascraft.palettes"
FeatureDType = Literal["float32", "float64", "int64"]

# Inputs are clamped to [0, 1]; values beyond these bounds mean the batch is in another range
# (e.g. [-1, 1] after the normalize brush, or 0..255) and are rejected instead of silently clamped.
_RANGE_GUARD = (-0.5, 1.5)


class Palette(BaseModel):
    """A feature extractor: validated parameters plus ``compute`` over a float image batch in [0, 1]."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: ClassVar[str] = ""
    version: ClassVar[int] = 1  # bump when the algorithm changes: it is part of view_name()
    # Raw images are resized to image_size x image_size before compute(); part of the params, hence of the view
    # name, so features computed at different resolutions never share a Feast view.
    image_size: int = Field(default=32, ge=3, le=1024)

    def feature_names(self) -> dict[str, FeatureDType]:
        """Output columns in order, each with its dtype (the Feast schema is generated from this)."""
        raise NotImplementedError

    def compute(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Feature name -> 1-D tensor of length B for a float ``B x C x H x W`` batch in [0, 1]."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The resolved palette (defaults filled in) as plain data."""
        return {"name": self.name, "params": self.model_dump(mode="json")}

    def view_name(self) -> str:
        """Feast feature-view name: ``<name>_<hash of version and resolved params>``."""
        return f"{self.name}_{stable_hash({'version': self.version, **self.config()}, length=8)}"

    def __add__(self, other: Palette | PaletteSet) -> PaletteSet:
        return PaletteSet((self,)) + other


PALETTES: Registry[type[Palette]] = Registry("palette", PALETTE_ENTRY_POINT_GROUP)


def build_palette(name: str, params: dict[str, Any] | None = None) -> Palette:
    """Factory: look a palette up by name and validate its parameters (errors name the field and range)."""
    return validate_params(PALETTES.get(name), params, "palette", name)


def check_images(images: torch.Tensor, owner: str = "palette") -> torch.Tensor:
    """Validate a ``B x C x H x W`` float batch (C = 1 or 3, values in [0, 1]) and return it clamped, as float32."""
    if not isinstance(images, torch.Tensor):
        raise ParameterError(f"{owner}: images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ParameterError(f"{owner}: images must be B x C x H x W with C in (1, 3), got shape {tuple(images.shape)}")
    if images.shape[2] < 1 or images.shape[3] < 1:
        raise ParameterError(f"{owner}: images must be at least 1 x 1 pixels, got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ParameterError(f"{owner}: images must be a float tensor in [0, 1], got dtype {images.dtype}")
    images = images.detach().to(torch.float32)
    if images.numel():
        low, high = (v.item() for v in torch.aminmax(images))  # one pass; NaN propagates into both
        if math.isnan(low) or math.isnan(high):
            raise ParameterError(f"{owner}: images contain NaN values")
        if not (low >= _RANGE_GUARD[0] and high <= _RANGE_GUARD[1]):
            raise ParameterError(
                f"{owner}: images must be in [0, 1], got values in [{low:.3g}, {high:.3g}]; "
                "compute palettes before the normalize brush (or divide 0..255 data by 255)"
            )
    return images.clamp(0.0, 1.0)


class PaletteSet:
    """An ordered, immutable composition of palettes; ``a + b`` appends. Column names must be unique."""

    def __init__(self, palettes: Iterable[Palette] = ()) -> None:
        self.palettes: tuple[Palette, ...] = tuple(palettes)
        owners: dict[str, str] = {}
        for palette in self.palettes:
            for column in palette.feature_names():
                if column in owners:
                    raise ParameterError(
                        f"palette set: feature {column!r} is produced by both {owners[column]!r} and "
                        f"{palette.view_name()!r}; every column must come from one palette"
                    )
                owners[column] = palette.view_name()

    @classmethod
    def from_spec(cls, components: Sequence[Any]) -> PaletteSet:
        """Build from spec entries (``ComponentSpec`` objects or mappings with ``name`` and ``params``)."""
        return cls(build_palette(*name_and_params(component)) for component in components)

    def __add__(self, other: Palette | PaletteSet) -> PaletteSet:
        extra = other.palettes if isinstance(other, PaletteSet) else (other,)
        return PaletteSet(self.palettes + tuple(extra))

    def __len__(self) -> int:
        return len(self.palettes)

    def __iter__(self) -> Iterator[Palette]:
        return iter(self.palettes)

    def __repr__(self) -> str:
        return "PaletteSet(" + " + ".join(f"{p.name}{p.model_dump()}" for p in self.palettes) + ")"

    def config(self) -> list[dict[str, Any]]:
        """The resolved set (defaults filled in) as plain data: logged with runs and hashed."""
        return [p.config() for p in self.palettes]

    def set_hash(self) -> str:
        """Content hash of the resolved set (palette versions included)."""
        return stable_hash([p.view_name() for p in self.palettes])

    def feature_names(self) -> dict[str, FeatureDType]:
        """Every output column of every palette, in order, with its dtype."""
        return {column: dtype for p in self.palettes for column, dtype in p.feature_names().items()}

    def compute(self, images: torch.Tensor, batch_size: int | None = None) -> dict[str, torch.Tensor]:
        """All columns of all palettes for a batch (processed ``batch_size`` images at a time when given)."""
        images = check_images(images, "palette set")
        if not len(images):
            return {column: torch.empty(0, dtype=getattr(torch, d)) for column, d in self.feature_names().items()}
        chunks = images.split(batch_size) if batch_size else (images,)
        parts = [{k: v for p in self.palettes for k, v in _run(p, chunk).items()} for chunk in chunks]
        return {column: torch.cat([part[column] for part in parts]) for column in self.feature_names()}


def compute_palette(palette: Palette, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run one palette on a checked batch; its output must be exactly its declared columns, each of length B."""
    return _run(palette, check_images(images, f"palette {palette.name!r}"))


def _run(palette: Palette, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Call ``palette.compute`` on an already checked batch and verify the columns, shapes and dtypes."""
    with torch.no_grad():
        out = palette.compute(images)
    declared = palette.feature_names()
    if list(out) != list(declared):
        raise ParameterError(f"palette {palette.name!r} returned columns {list(out)} but declares {list(declared)}")
    result = {}
    for column, dtype in declared.items():
        values = out[column]
        if values.shape != (len(images),):
            raise ParameterError(
                f"palette {palette.name!r} column {column!r} has shape {tuple(values.shape)}, expected ({len(images)},)"
            )
        result[column] = values.to(getattr(torch, dtype))
    return result
