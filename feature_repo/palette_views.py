"""Feast definitions generated from CanvasCraft's palettes (``feast apply`` imports this file).

Declares the ``image`` entity, one parquet source + typed feature view per distinct palette (schema from the
palette's ``feature_names()``), and one feature service per palette set: ``palettes_default`` (every registered
palette with default parameters) and one per pipeline spec in ../pipelines that declares palettes (named after
the pipeline). Needs CANVASCRAFT_FEAST_DATA (absolute), like feature_store.yaml.
"""

from pathlib import Path

from canvascraft.features.definitions import (
    build_definitions,
    builtin_palette_sets,
    pipeline_palette_sets,
)
from canvascraft.features.location import data_dir_from_env

PIPELINES = Path(__file__).resolve().parent.parent / "pipelines"
PALETTE_SETS = {**builtin_palette_sets(), **(pipeline_palette_sets(PIPELINES) if PIPELINES.is_dir() else {})}

# Feast collects module attributes that are Feast objects: expose each generated object under its own name.
for _obj in build_definitions(PALETTE_SETS, data_dir_from_env()):
    globals()[f"{type(_obj).__name__.lower()}__{_obj.name}"] = _obj
