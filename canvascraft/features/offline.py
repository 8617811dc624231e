"""Offline palette rows: compute a frame, find the ids a view lacks, append part files.

Offline rows are append-only parquet part files, one folder per palette view (see ``definitions``); an image's
rows are written once: its id is the sha256 of its bytes, so its features never change. Each write is one new
part file with a unique name, published atomically (temp file + rename locally, one PUT on S3), so concurrent
writers never corrupt a file; a reader's glob never matches a temp file.
"""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.dataset as pads
import torch
from feast import FeatureStore, FeatureView, FileSource
from feast.errors import FeatureViewNotFoundException
from pydantic import BaseModel

from canvascraft.errors import SettingsError
from canvascraft.features.location import data_filesystem, is_remote
from canvascraft.features.palette_chunks import check_ids, compute_palette_frame
from canvascraft.features.schema import (
    CREATED_FIELD,
    JOIN_KEY,
    PART_GLOB,
    TIMESTAMP_FIELD,
)
from canvascraft.palettes import Palette, PaletteSet, check_images


class ViewWrite(BaseModel):
    """What one offline write (``write_new_features`` or ``write_view_rows``) did for one palette view."""

    view: str
    palette: str
    rows_requested: int
    rows_existing: int
    rows_computed: int
    rows_written: int
    seconds_compute: float
    seconds_write: float
    path: str | None = None


class WriteReport(BaseModel):
    """Incremental offline write: only image ids missing from a view are computed and written (row = image x view)."""

    views: list[ViewWrite]
    images_requested: int
    rows_computed: int
    rows_written: int
    seconds: float


def view_folder(store: FeatureStore, palette: Palette) -> str:
    """The folder Feast reads a palette's offline rows from (its registered source glob's parent)."""
    try:
        view = store.get_feature_view(palette.view_name())
    except FeatureViewNotFoundException:
        raise SettingsError(
            f"palette {palette.name!r}: feature view {palette.view_name()!r} is not registered in Feast project "
            f"{store.project!r}; call apply_definitions with a palette set that contains it"
        ) from None
    return source_folder(view)


def source_folder(view: FeatureView) -> str:
    """Folder of a view's parquet FileSource glob (the part files Feast reads)."""
    source = view.batch_source
    if not isinstance(source, FileSource):
        raise SettingsError(
            f"feature view {view.name!r}: batch source is {type(source).__name__}; palettes need a parquet FileSource"
        )
    return source.path.rsplit("/", 1)[0]


def part_files(folder: str) -> tuple[Any, list[str]]:
    """The filesystem of a view's folder and its part files (sorted; temp files never match the glob)."""
    fs, path = data_filesystem(folder)
    return fs, sorted(fs.glob(f"{path.rstrip('/')}/{PART_GLOB}"))


def existing_image_ids(folder: str | Path) -> set[str]:
    """Image ids already present in a view's offline part files."""
    fs, parts = part_files(str(folder))
    if not parts:
        return set()
    table = pads.dataset(parts, format="parquet", filesystem=fs).to_table(columns=[JOIN_KEY])
    return set(table.column(JOIN_KEY).to_pylist())


def missing_image_ids(store: FeatureStore, palette_set: PaletteSet, image_ids: Sequence[str]) -> list[str]:
    """Ids (input order, deduplicated) lacking offline rows in at least one view of the set: the images to load."""
    existing = [existing_image_ids(view_folder(store, p)) for p in palette_set]
    return [i for i in dict.fromkeys(image_ids) if any(i not in ids for ids in existing)]


def write_new_features(
    store: FeatureStore,
    images: torch.Tensor,
    image_ids: Sequence[str],
    palette_set: PaletteSet,
    batch_size: int = 512,
) -> WriteReport:
    """Compute and append offline rows only for image ids a view does not hold yet (one part file per view)."""
    started = time.perf_counter()
    check_ids(images, image_ids)
    images = check_images(images, "features")
    first_index: dict[str, int] = {}
    for index, image_id in enumerate(image_ids):
        first_index.setdefault(image_id, index)
    views = [_write_view(store, palette, images, first_index, batch_size) for palette in palette_set]
    return WriteReport(
        views=views,
        images_requested=len(first_index),
        rows_computed=sum(v.rows_computed for v in views),
        rows_written=sum(v.rows_written for v in views),
        seconds=round(time.perf_counter() - started, 3),
    )


def _write_view(
    store: FeatureStore, palette: Palette, images: torch.Tensor, first_index: dict[str, int], batch_size: int
) -> ViewWrite:
    """Compute one palette for its missing ids and write them as one atomically renamed part file."""
    folder = view_folder(store, palette)
    existing = existing_image_ids(folder)
    todo = [image_id for image_id in first_index if image_id not in existing]
    report = ViewWrite(
        view=palette.view_name(),
        palette=palette.name,
        rows_requested=len(first_index),
        rows_existing=len(first_index) - len(todo),
        rows_computed=0,
        rows_written=0,
        seconds_compute=0.0,
        seconds_write=0.0,
    )
    if not todo:
        return report
    started = time.perf_counter()
    subset = images[torch.as_tensor([first_index[i] for i in todo], dtype=torch.long)]
    frame = compute_palette_frame(subset, todo, PaletteSet((palette,)), batch_size=batch_size)
    report.seconds_compute = round(time.perf_counter() - started, 3)
    report.rows_computed = len(frame)
    started = time.perf_counter()
    report.path = write_part(folder, frame)
    report.seconds_write = round(time.perf_counter() - started, 3)
    report.rows_written = len(frame)
    return report


def write_view_rows(store: FeatureStore, palette: Palette, frame: pd.DataFrame) -> ViewWrite:
    """Append the rows of ``frame`` (``image_id`` + at least the palette's columns) whose ids the view lacks."""
    folder = view_folder(store, palette)
    existing = existing_image_ids(folder)  # read at write time: rows another run wrote meanwhile are not repeated
    unique = frame.drop_duplicates(JOIN_KEY)
    new = unique.loc[~unique[JOIN_KEY].isin(existing), [JOIN_KEY, *palette.feature_names()]]
    report = ViewWrite(
        view=palette.view_name(),
        palette=palette.name,
        rows_requested=len(unique),
        rows_existing=len(unique) - len(new),
        rows_computed=len(new),
        rows_written=0,
        seconds_compute=0.0,
        seconds_write=0.0,
    )
    if new.empty:
        return report
    started = time.perf_counter()
    report.path = write_part(folder, new.reset_index(drop=True))
    report.seconds_write = round(time.perf_counter() - started, 3)
    report.rows_written = len(new)
    return report


def write_part(folder: str | Path, frame: pd.DataFrame, now: datetime | None = None) -> str:
    """Stamp rows with event/created time (``datetime64[us, UTC]``) and write a part file atomically."""
    stamp = as_utc(now or datetime.now(UTC)).floor("us")
    frame = frame.copy()
    frame[TIMESTAMP_FIELD] = pd.Series(stamp, index=frame.index).astype("datetime64[us, UTC]")
    frame[CREATED_FIELD] = frame[TIMESTAMP_FIELD]
    name = f"part-{stamp.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.parquet"
    folder = str(folder).rstrip("/")
    if is_remote(folder):
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        fs, remote_path = data_filesystem(folder)
        fs.pipe_file(f"{remote_path}/{name}", buffer.getvalue())  # an S3 object appears only once complete
        return f"{folder}/{name}"
    local = Path(folder)
    local.mkdir(parents=True, exist_ok=True)
    tmp = local / f".{name}.tmp"  # not matched by the source glob until renamed
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, local / name)
    return str(local / name)


def as_utc(moment: datetime) -> pd.Timestamp:
    """A timestamp in UTC; naive values are taken as UTC (as Feast does)."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
