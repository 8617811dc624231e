"""Retrieval of palette features: point-in-time historical joins (offline, DuckDB) and online lookups, one row per
requested image id in the caller's order."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from feast import FeatureStore
from feast.errors import FeatureServiceNotFoundException
from feast.types import Float32
from pydantic import BaseModel

from canvascraft.errors import ParameterError, StorageError
from canvascraft.features.location import s3_options
from canvascraft.features.offline import as_utc, part_files, source_folder
from canvascraft.features.schema import JOIN_KEY, TIMESTAMP_FIELD
from canvascraft.features.store import duckdb_reads_s3


class RetrievalReport(BaseModel):
    """A historical or online retrieval: rows asked for, rows with every feature missing, time taken."""

    feature_service: str
    rows: int
    rows_missing: int
    features: int
    seconds: float


def _service(store: FeatureStore, name: str):
    """A registered feature service, or an error naming the allowed services."""
    try:
        service = store.get_feature_service(name)
    except FeatureServiceNotFoundException:
        allowed = sorted(s.name for s in store.list_feature_services())
        raise ParameterError(
            f"unknown feature service {name!r}; allowed values: {', '.join(allowed) or '(none)'}"
        ) from None
    return service


def _feature_columns(service: Any) -> list[str]:
    """Feature column names served by a service, in projection order."""
    return [f.name for projection in service.feature_view_projections for f in projection.features]


def _ordered(frame: pd.DataFrame, image_ids: Sequence[str], columns: list[str]) -> pd.DataFrame:
    """Rows re-joined on ``image_id`` in the caller's order (Feast returns another order)."""
    found = frame[[JOIN_KEY, *columns]].astype({JOIN_KEY: object}).drop_duplicates(JOIN_KEY, keep="last")
    return pd.DataFrame({JOIN_KEY: list(image_ids)}, dtype=object).merge(found, on=JOIN_KEY, how="left")


def historical_features(
    store: FeatureStore, image_ids: Sequence[str], feature_service: str, at: datetime | None = None
) -> tuple[pd.DataFrame, RetrievalReport]:
    """Point-in-time ``get_historical_features`` as of ``at`` (now), one row per requested id in the given order."""
    started = time.perf_counter()
    service = _service(store, feature_service)
    for projection in service.feature_view_projections:
        if not part_files(source_folder(store.get_feature_view(projection.name)))[1]:
            raise StorageError(
                f"feature view {projection.name!r} of service {feature_service!r} has no offline rows; "
                "call write_new_features first"
            )
    columns = _feature_columns(service)
    unique = list(dict.fromkeys(image_ids))
    stamp = as_utc(at or datetime.now(UTC)).floor("us")
    stamps = pd.Series([stamp] * len(unique), dtype="datetime64[us, UTC]")
    entity_df = pd.DataFrame({JOIN_KEY: unique, TIMESTAMP_FIELD: stamps})
    if s3_options() is not None:
        duckdb_reads_s3()
    result = store.get_historical_features(entity_df=entity_df, features=service).to_df()
    frame = _ordered(result, image_ids, columns)
    return frame, _retrieval_report(feature_service, frame, columns, started)


def online_features(
    store: FeatureStore, image_ids: Sequence[str], feature_service: str
) -> tuple[pd.DataFrame, RetrievalReport]:
    """Latest materialized values from the online store, one row per requested id in the given order."""
    started = time.perf_counter()
    service = _service(store, feature_service)
    columns = _feature_columns(service)
    unique = list(dict.fromkeys(image_ids))
    response = store.get_online_features(features=service, entity_rows=[{JOIN_KEY: i} for i in unique])
    frame = _ordered(pd.DataFrame(response.to_dict()), image_ids, columns)
    float32 = [f.name for p in service.feature_view_projections for f in p.features if f.dtype == Float32]
    frame = frame.astype(dict.fromkeys(float32, "float32"))  # the online response carries Python floats
    return frame, _retrieval_report(feature_service, frame, columns, started)


def _retrieval_report(name: str, frame: pd.DataFrame, columns: list[str], started: float) -> RetrievalReport:
    """Counts and timing of one retrieval."""
    missing = int(frame[columns].isna().all(axis=1).sum()) if columns else 0
    return RetrievalReport(
        feature_service=name,
        rows=len(frame),
        rows_missing=missing,
        features=len(columns),
        seconds=round(time.perf_counter() - started, 3),
    )
