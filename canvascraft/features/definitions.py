"""Feast objects generated from palette definitions: the ``image`` entity, one source and view per palette, one
service per palette set. Used by ``feature_repo/`` (``feast apply``) and by ``store.apply_definitions``; the
``data_dir`` they take is ``location.feast_data_dir``.

Offline layout: ``<data_dir>/offline/<palette.view_name()>/part-*.parquet`` (append-only part files, read by the
DuckDB offline store through a glob). Feast stores the absolute glob in the registry, so ``data_dir`` is absolute.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.data_format import ParquetFormat
from feast.types import Float32, Float64, Int64

from canvascraft.features.palette_chunks import palette_set_for
from canvascraft.features.schema import (
    CREATED_FIELD,
    ENTITY_NAME,
    JOIN_KEY,
    OFFLINE_FOLDER,
    PART_GLOB,
    TIMESTAMP_FIELD,
)
from canvascraft.palettes import PALETTES, Palette, PaletteSet

FEAST_DTYPES = {"float32": Float32, "float64": Float64, "int64": Int64}

# One entity object: Feast's repo parser dedupes by identity, so every view must reference this instance.
IMAGE = Entity(
    name=ENTITY_NAME,
    join_keys=[JOIN_KEY],
    value_type=ValueType.STRING,
    description="An image, keyed by the sha256 of its bytes (the ingest manifest's sha256).",
)


def offline_folder(data_dir: str | Path, palette: Palette) -> str:
    """Folder (or S3 prefix) holding one palette's parquet part files."""
    return f"{str(data_dir).rstrip('/')}/{OFFLINE_FOLDER}/{palette.view_name()}"


def palette_source(palette: Palette, data_dir: str | Path) -> FileSource:
    """Parquet FileSource over the palette's part files (a glob the DuckDB offline store expands)."""
    return FileSource(
        name=f"{palette.view_name()}_source",
        path=f"{offline_folder(data_dir, palette)}/{PART_GLOB}",
        file_format=ParquetFormat(),
        timestamp_field=TIMESTAMP_FIELD,
        created_timestamp_column=CREATED_FIELD,
        description=f"Offline rows of palette {palette.name!r}.",
    )


def palette_view(palette: Palette, data_dir: str | Path) -> FeatureView:
    """Typed feature view whose schema is the palette's ``feature_names()``; ttl 0: content-keyed rows never expire."""
    return FeatureView(
        name=palette.view_name(),
        entities=[IMAGE],
        ttl=timedelta(0),
        schema=[Field(name=column, dtype=FEAST_DTYPES[dtype]) for column, dtype in palette.feature_names().items()],
        source=palette_source(palette, data_dir),
        online=True,
        description=(palette.__doc__ or palette.name).strip().splitlines()[0],
        tags={
            "palette": palette.name,
            "version": str(palette.version),
            "params": json.dumps(palette.config()["params"], sort_keys=True),
        },
    )


def palette_service(name: str, palette_set: PaletteSet, views: Mapping[str, FeatureView]) -> FeatureService:
    """Feature service serving every column of a palette set (``views`` maps view name to view)."""
    return FeatureService(
        name=name,
        features=[views[p.view_name()] for p in palette_set],
        tags={"palettes": json.dumps(palette_set.config())},
        description=f"Palette set {palette_set.set_hash()}: {', '.join(p.name for p in palette_set)}.",
    )


def build_definitions(palette_sets: Mapping[str, PaletteSet], data_dir: str | Path) -> list[Any]:
    """Entity, sources, views (one per distinct palette) and one service per named palette set, ready to apply."""
    views: dict[str, FeatureView] = {}
    for palette_set in palette_sets.values():
        for palette in palette_set:
            views.setdefault(palette.view_name(), palette_view(palette, data_dir))
    services = [palette_service(name, ps, views) for name, ps in palette_sets.items()]
    return [IMAGE, *views.values(), *services]


def builtin_palette_sets() -> dict[str, PaletteSet]:
    """``{"palettes_default": every registered palette with default parameters}``."""
    return {"palettes_default": PaletteSet(PALETTES.get(name)() for name in PALETTES.names())}


def pipeline_palette_sets(folder: Path) -> dict[str, PaletteSet]:
    """One palette set per pipeline spec (``*.yaml``) in ``folder`` that declares palettes, named after the pipeline."""
    from canvascraft.spec import load_spec

    sets: dict[str, PaletteSet] = {}
    for path in sorted(Path(folder).glob("*.y*ml")):
        spec = load_spec(path)
        if spec.features.palettes:
            sets[spec.name] = palette_set_for(spec)
    return sets
