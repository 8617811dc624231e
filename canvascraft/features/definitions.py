"""Feast objects generated from palette definitions: the ``image`` entity, one source and view per palette, one
service per palette set. Used by ``feature_repo/`` (``feast apply``) and by ``store.apply_definitions``.

Offline layout: ``<data_dir>/offline/<palette.view_name()>/part-*.parquet`` (append-only part files, read by the
DuckDB offline store through a glob). Feast stores the absolute glob in the registry, so ``data_dir`` is absolute.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.data_format import ParquetFormat
from feast.types import Float32, Float64, Int64

from canvascraft.errors import SettingsError
from canvascraft.palettes import PALETTES, Palette, PaletteSet

DATA_DIR_ENV = "CANVASCRAFT_FEAST_DATA"
ENTITY_NAME = "image"
JOIN_KEY = "image_id"
TIMESTAMP_FIELD = "event_timestamp"
CREATED_FIELD = "created"
OFFLINE_FOLDER = "offline"
PART_GLOB = "part-*.parquet"
FEAST_DTYPES = {"float32": Float32, "float64": Float64, "int64": Int64}

# One entity object: Feast's repo parser dedupes by identity, so every view must reference this instance.
IMAGE = Entity(
    name=ENTITY_NAME,
    join_keys=[JOIN_KEY],
    value_type=ValueType.STRING,
    description="An image, keyed by the sha256 of its bytes (the ingest manifest's sha256).",
)


def data_dir_from_env() -> str:
    """The Feast data location named by ``CANVASCRAFT_FEAST_DATA``: an absolute folder or an ``s3a://`` URL."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    if not value:
        raise SettingsError(
            f"{DATA_DIR_ENV} is not set; feature_repo/feature_store.yaml and the palette sources need it, "
            f"e.g. export {DATA_DIR_ENV}=\"$CANVASCRAFT_HOME/feast\" (absolute path) or s3a://BUCKET/PREFIX/feast"
        )
    return check_data_dir(value)


def check_data_dir(value: str) -> str:
    """An absolute folder or an ``s3a://`` URL (DuckDB reads it through a registered s3fs); else a clear error."""
    if value.startswith("s3a://"):
        return value.rstrip("/")
    if "://" in value:
        raise SettingsError(f"{DATA_DIR_ENV} {value!r}: allowed values are an absolute folder or s3a://BUCKET/PREFIX "
                            "(s3a: DuckDB reads it through s3fs; an s3:// path makes it download its httpfs extension)")
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise SettingsError(
            f"{DATA_DIR_ENV} must be an absolute path (Feast resolves relative ones per process), got {value!r}"
        )
    return str(path)


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


def palette_set_for(spec: Any) -> PaletteSet:
    """The spec's palettes, each at ``features.image_size`` unless its params set its own ``image_size``."""
    return PaletteSet.from_spec([
        {"name": c.name, "params": {"image_size": spec.features.image_size, **c.params}} for c in spec.features.palettes
    ])


