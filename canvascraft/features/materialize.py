"""Materialization: offline part files of palette views into the online store, once per run (Feast's
``materialize_incremental`` under the registry lock), with the rows of each view's window counted beforehand."""

from __future__ import annotations

import contextlib
import io
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow.dataset as pads
from feast import FeatureStore, FeatureView
from pydantic import BaseModel

from canvascraft.errors import SettingsError
from canvascraft.features.location import s3_options
from canvascraft.features.offline import as_utc, part_files, source_folder
from canvascraft.features.schema import TIMESTAMP_FIELD
from canvascraft.features.store import duckdb_reads_s3, registry_write
from canvascraft.palettes import PaletteSet

# Feast's first incremental materialization of a ttl-0 view starts this long before end_date.
FIRST_WINDOW = timedelta(weeks=52)


class ViewMaterialization(BaseModel):
    """Rows of one view inside the materialization window (start, end]."""

    view: str
    start: datetime
    end: datetime
    rows: int


class MaterializeReport(BaseModel):
    """One ``materialize_incremental`` call: rows per view, views skipped for lack of data, rows per second."""

    views: list[ViewMaterialization]
    skipped: list[str]
    rows: int
    seconds: float
    rows_per_second: float


def _parts(view: FeatureView) -> tuple[Any, list[str]]:
    """Offline part files of a registered view (with their filesystem)."""
    return part_files(source_folder(view))


def _rows_between(fs: Any, parts: list[str], start: datetime, end: datetime) -> int:
    """Offline rows with ``start <= event_timestamp <= end`` (Feast's materialization filter)."""
    stamps = pads.dataset(parts, format="parquet", filesystem=fs).to_table(columns=[TIMESTAMP_FIELD])
    values = stamps.column(TIMESTAMP_FIELD).to_pandas()
    return int(((values >= pd.Timestamp(start)) & (values <= pd.Timestamp(end))).sum())


def materialize(
    store: FeatureStore, palette_set: PaletteSet | None = None, end_date: datetime | None = None
) -> MaterializeReport:
    """``materialize_incremental`` up to ``end_date`` (now) for the set's views (all views) that hold offline rows."""
    end = as_utc(end_date or datetime.now(UTC)).to_pydatetime()
    wanted = {p.view_name() for p in palette_set} if palette_set is not None else None
    views, skipped, plans = [], [], []
    for view in store.list_feature_views():
        if (view.name not in wanted) if wanted is not None else ("palette" not in view.tags):
            continue  # only palette views: other teams' views may not be parquet FileSources
        fs, parts = _parts(view)
        if not parts:
            skipped.append(view.name)
            continue
        start = as_utc(view.most_recent_end_time or datetime.now(UTC) - FIRST_WINDOW).to_pydatetime()
        plans.append(
            ViewMaterialization(view=view.name, start=start, end=end, rows=_rows_between(fs, parts, start, end))
        )
        views.append(view.name)
    if wanted is not None and (unknown := wanted - set(views) - set(skipped)):
        raise SettingsError(f"materialize: feature views {sorted(unknown)} are not registered; call apply_definitions")
    started = time.perf_counter()
    if views:
        # Feast prints a coloured per-view progress report to stdout; the returned report says the same in one line
        # (the Prefect tasks calling this keep log_prints off, so the print reaches this redirect, not the run log)
        if s3_options() is not None:
            duckdb_reads_s3()
        with registry_write(store), contextlib.redirect_stdout(io.StringIO()):
            store.materialize_incremental(end_date=end, feature_views=views)
    seconds = time.perf_counter() - started
    rows = sum(p.rows for p in plans)
    return MaterializeReport(
        views=plans,
        skipped=sorted(skipped),
        rows=rows,
        seconds=round(seconds, 3),
        rows_per_second=round(rows / seconds, 1) if seconds > 0 else 0.0,
    )
