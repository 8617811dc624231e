"""Feature-store operations on the Feast repo: open, apply, write offline rows incrementally, materialize,
retrieve (point-in-time historical and online), filter and summarise.

Offline rows are append-only parquet part files, one folder per palette view (see ``definitions``); an image's
rows are written once: its id is the sha256 of its bytes, so its features never change.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import time
import uuid
import warnings
import weakref
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import torch
import yaml
from feast import FeatureStore, FeatureView, FileSource
from feast.constants import FEAST_FS_YAML_FILE_PATH_ENV_NAME
from feast.errors import FeatureServiceNotFoundException, FeatureViewNotFoundException
from feast.types import Float32
from pydantic import BaseModel

from canvascraft.errors import ParameterError, SettingsError, StorageError
from canvascraft.features.definitions import (
    CREATED_FIELD,
    DATA_DIR_ENV,
    JOIN_KEY,
    PART_GLOB,
    TIMESTAMP_FIELD,
    build_definitions,
    check_data_dir,
    offline_folder,
)
from canvascraft.palettes import Palette, PaletteSet, check_images
from canvascraft.settings import Settings, get_settings
from canvascraft.spec import FilterSpec

FEAST_YAML = "feature_store.yaml"
# Feast's first incremental materialization of a ttl-0 view starts this long before end_date.
FIRST_WINDOW = timedelta(weeks=52)
_OPS = {
    ">=": lambda s, v: s >= v,
    ">": lambda s, v: s > v,
    "<=": lambda s, v: s <= v,
    "<": lambda s, v: s < v,
    "==": lambda s, v: s == v,
    "!=": lambda s, v: s != v,
}


class ViewWrite(BaseModel):
    """What ``write_new_features`` did for one palette view."""

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


class RetrievalReport(BaseModel):
    """A historical or online retrieval: rows asked for, rows with every feature missing, time taken."""

    feature_service: str
    rows: int
    rows_missing: int
    features: int
    seconds: float


class FilterOutcome(BaseModel):
    """How many rows fail one filter (counted independently of the other filters)."""

    feature: str
    op: str
    value: float
    rows_failed: int


class FilterReport(BaseModel):
    """Training-set curation: rows in, rows kept, rows with a missing filter feature, failures per filter."""

    rows_in: int
    rows_kept: int
    rows_missing: int
    filters: list[FilterOutcome]


def feast_data_dir(settings: Settings | None = None) -> str:
    """Where offline parquet and the registry live: ``CANVASCRAFT_FEAST_DATA`` when set, else ``<artifact root>/feast``
    for an S3 artifact root (as ``s3a://``, the scheme DuckDB reads through s3fs), else ``<home>/feast``."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    if value:
        return check_data_dir(value) if value.startswith("s3a://") else str(Path(value).expanduser().resolve())
    settings = settings or get_settings()
    root = settings.resolved_artifact_root
    if root.startswith("s3://"):
        return "s3a://" + root[len("s3://"):].rstrip("/") + "/feast"
    return str(settings.home / "feast")


def feast_environment(settings: Settings | None = None) -> dict[str, str]:
    """The variables ``feature_store.yaml`` expands; pass them to ``feast`` CLI subprocesses too."""
    return {DATA_DIR_ENV: feast_data_dir(settings)}


def _is_remote(data_dir: str) -> bool:
    return data_dir.startswith("s3a://")


def data_filesystem(path: str) -> tuple[Any, str]:
    """The fsspec filesystem and bare path of an offline location (local folder, or s3a:// with the settings' S3)."""
    import fsspec

    from canvascraft.artifact_root import storage_options

    options: dict[str, Any] = {}
    if _is_remote(path):
        options = {**_STORE_OPTIONS.get("s3", {})} or storage_options(get_settings(), force_s3=True)
    return fsspec.core.url_to_fs(path, **options)


# s3fs options of the last opened store (its settings' endpoint and keys): the data helpers below take store paths
_STORE_OPTIONS: dict[str, dict[str, Any]] = {}


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block and restore the previous values afterwards."""
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def release_duckdb() -> None:
    """Close ibis' default DuckDB connection (Feast's DuckDB offline store runs on it) and collect garbage.

    A DuckDB connection still alive at interpreter exit makes duckdb's nanobind bindings print a "nanobind: leaked
    N instances / types / functions" dump of ~100 lines at every exit; closing it first ends the process quietly.
    """
    import gc
    import sys

    ibis = sys.modules.get("ibis")
    backend = getattr(getattr(ibis, "options", None), "default_backend", None)
    if ibis is not None and backend is not None:
        try:
            backend.disconnect()
        except Exception:  # noqa: BLE001 - exit-time cleanup must never raise
            pass
        ibis.options.default_backend = None
    gc.collect()


def open_store(settings: Settings | None = None, repo_path: Path | None = None) -> FeatureStore:
    """A FeatureStore over the repo's yaml (or ``FEAST_FS_YAML_FILE_PATH``) with the data dir from settings."""
    atexit.unregister(release_duckdb)
    atexit.register(release_duckdb)  # once per process (registered last: runs before the modules tear down)
    # ibis' DuckDB backend (inside Feast) calls a DuckDB method DuckDB deprecated: nothing a user can act on
    warnings.filterwarnings("ignore", message=r"fetch_arrow_table\(\) is deprecated", category=DeprecationWarning)
    settings = settings or get_settings()
    repo = Path(repo_path or settings.feast_repo_path).resolve()
    yaml_file = Path(os.environ.get(FEAST_FS_YAML_FILE_PATH_ENV_NAME) or repo / FEAST_YAML).resolve()
    if not yaml_file.is_file():
        raise SettingsError(
            f"Feast repo: {yaml_file} does not exist; set CANVASCRAFT_FEAST_REPO_PATH to the feature_repo folder "
            f"(now {repo}) or {FEAST_FS_YAML_FILE_PATH_ENV_NAME} to a feature_store yaml"
        )
    environment = feast_environment(settings)
    data_dir = environment[DATA_DIR_ENV]
    redis_url = settings.resolved_redis_url
    if not _is_remote(data_dir):
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        if redis_url is None:  # one machine: the yaml as written (file registry, sqlite online store)
            with _environment(environment):
                return FeatureStore(repo_path=str(repo), fs_yaml_file=yaml_file)
    from feast.repo_config import RepoConfig

    from canvascraft.artifact_root import storage_options

    # Services replace the yaml's local files (settings injected, the yaml stays the local profile): the registry
    # and offline parquet under the artifact root, the online store in Redis, so every worker sees the same store.
    with _environment(environment):
        values = yaml.safe_load(os.path.expandvars(yaml_file.read_text()))
    online_is_local = values.get("online_store", {}).get("type", "sqlite") == "sqlite"
    registry = values.get("registry", {})
    registry = registry if isinstance(registry, dict) else {"path": registry}
    registry_path = str(registry.get("path", ""))
    # the yaml's own file registry (under ${CANVASCRAFT_FEAST_DATA}, or any plain path) follows the data
    registry_is_local = registry.get("registry_type", "file") == "file" and (
        "://" not in registry_path or registry_path.startswith(data_dir))
    # only the yaml's *local* pieces are replaced: a profile naming its own services (SQL registry, a Redis) wins
    if redis_url is not None and online_is_local:
        values["online_store"] = {"type": "redis", "connection_string": feast_redis_connection(redis_url)}
    elif _is_remote(data_dir) and online_is_local:  # no Redis: online store on this machine (the next run refills)
        local = settings.home / "feast"
        local.mkdir(parents=True, exist_ok=True)
        values["online_store"] = {"type": "sqlite", "path": str(local / "online.db")}
    registry_env: dict[str, str] = {}
    if _is_remote(data_dir):
        options = storage_options(settings, force_s3=True)
        _STORE_OPTIONS["s3"] = options
    if _is_remote(data_dir) and registry_is_local:
        values["registry"] = {**registry, "registry_type": "file",
                              "path": "s3://" + data_dir[len("s3a://"):] + "/registry.pb"}
        # Feast's S3 registry builds its boto3 client from the environment when the store is created
        registry_env = {"AWS_DEFAULT_REGION": settings.s3_region}
        if options.get("endpoint_url"):
            registry_env["FEAST_S3_ENDPOINT_URL"] = options["endpoint_url"]
        if options.get("key"):
            registry_env.update(AWS_ACCESS_KEY_ID=options["key"], AWS_SECRET_ACCESS_KEY=options["secret"])
    with _environment({**environment, **registry_env}):
        store = FeatureStore(repo_path=str(repo), config=RepoConfig(repo_path=repo, **values))
        _ = store.registry  # built lazily: its boto3 client must be created while the environment names the S3
    _REDIS_URLS[store] = redis_url
    return store


# Redis of each opened store: registry writes of stores sharing a remote registry are serialised there
_REDIS_URLS: weakref.WeakKeyDictionary[FeatureStore, str | None] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def registry_write(store: FeatureStore) -> Iterator[None]:
    """Serialise registry writes across processes and machines when the registry is shared (Redis lock).

    Feast's file registry (also on S3) writes the whole registry from the process's cached copy: two writers at
    once lose one's update (a view, a materialization interval). Under a Redis lock, each writer refreshes the
    registry first and writes last. A local file registry (one machine) needs no lock.
    """
    url = _REDIS_URLS.get(store)
    if url is None:
        yield
        return
    import redis

    lock = redis.Redis.from_url(url).lock("canvascraft:feast-registry", timeout=600, blocking_timeout=900)
    if not lock.acquire():
        raise StorageError("Feast registry: could not take the registry lock in Redis within 900 s")
    try:
        store.refresh_registry()
        yield
    finally:
        lock.release()


def _duckdb_reads_s3() -> None:
    """Let DuckDB (Feast's offline store, through ibis) read ``s3a://`` part files via s3fs.

    ibis installs DuckDB's httpfs extension for ``s3://`` paths, a download this platform never makes; ``s3a://``
    goes to a filesystem registered on the connection instead. Registered once per connection.
    """
    import ibis
    import s3fs

    connection = ibis.get_backend().con
    if {"s3", "s3a", "s3fs"} & set(connection.list_filesystems()):
        return
    connection.register_filesystem(s3fs.S3FileSystem(**_STORE_OPTIONS.get("s3", {})))


def feast_redis_connection(url: str) -> str:
    """Feast's Redis ``connection_string`` (``host:port,db=N[,password=P][,ssl=true]``) from a ``redis://`` URL."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise SettingsError(f"CANVASCRAFT_REDIS_URL {url.split('@')[-1]!r} is not a redis://host:port/db URL; "
                            "allowed schemes: redis, rediss")
    options = [f"{parts.hostname}:{parts.port or 6379}", f"db={(parts.path.strip('/') or '0')}"]
    if parts.password:
        options.append(f"password={parts.password}")
    if parts.scheme == "rediss":
        options.append("ssl=true")
    return ",".join(options)


def apply_definitions(
    store: FeatureStore, palette_sets: Mapping[str, PaletteSet], data_dir: str | Path | None = None
) -> dict[str, Any]:
    """Register the entity, a view per palette and a service per named set (never deletes); names and seconds."""
    data_dir = str(data_dir or feast_data_dir())
    started = time.perf_counter()
    objects = build_definitions(palette_sets, data_dir)
    if not _is_remote(data_dir):
        for palette_set in palette_sets.values():
            for palette in palette_set:
                Path(offline_folder(data_dir, palette)).mkdir(parents=True, exist_ok=True)
    with registry_write(store):
        store.apply(objects, partial=True)
    return {
        "views": sorted({p.view_name() for ps in palette_sets.values() for p in ps}),
        "services": sorted(palette_sets),
        "seconds": round(time.perf_counter() - started, 3),
    }


def compute_palette_frame(
    images: torch.Tensor, image_ids: Sequence[str], palette_set: PaletteSet | Palette, batch_size: int = 512
) -> pd.DataFrame:
    """``image_id`` plus every palette column for a ``B x C x H x W`` batch in [0, 1], one row per image."""
    _check_ids(images, image_ids)
    palette_set = palette_set if isinstance(palette_set, PaletteSet) else PaletteSet((palette_set,))
    columns = palette_set.compute(images, batch_size=batch_size)
    frame = pd.DataFrame({name: values.numpy() for name, values in columns.items()})
    frame.insert(0, JOIN_KEY, pd.array(list(image_ids), dtype="string"))
    return frame


def _check_ids(images: torch.Tensor, image_ids: Sequence[str]) -> None:
    """Image ids must be non-empty strings, one per image."""
    if len(image_ids) != len(images):
        raise ParameterError(f"features: got {len(image_ids)} image_ids for {len(images)} images; give one per image")
    bad = [i for i in image_ids if not isinstance(i, str) or not i]
    if bad:
        raise ParameterError(f"features: image_ids must be non-empty strings (sha256 hex), got {bad[:3]!r}")


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


def _part_files(folder: str) -> tuple[Any, list[str]]:
    """The filesystem of a view's folder and its part files (sorted; temp files never match the glob)."""
    fs, path = data_filesystem(folder)
    return fs, sorted(fs.glob(f"{path.rstrip('/')}/{PART_GLOB}"))


def existing_image_ids(folder: str | Path) -> set[str]:
    """Image ids already present in a view's offline part files."""
    fs, parts = _part_files(str(folder))
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
    _check_ids(images, image_ids)
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
        view=palette.view_name(), palette=palette.name, rows_requested=len(first_index),
        rows_existing=len(first_index) - len(todo), rows_computed=0, rows_written=0,
        seconds_compute=0.0, seconds_write=0.0,
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


def write_part(folder: str | Path, frame: pd.DataFrame, now: datetime | None = None) -> str:
    """Stamp rows with event/created time (``datetime64[us, UTC]``) and write a part file atomically."""
    stamp = _utc(now or datetime.now(UTC)).floor("us")
    frame = frame.copy()
    frame[TIMESTAMP_FIELD] = pd.Series(stamp, index=frame.index).astype("datetime64[us, UTC]")
    frame[CREATED_FIELD] = frame[TIMESTAMP_FIELD]
    name = f"part-{stamp.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.parquet"
    folder = str(folder).rstrip("/")
    if _is_remote(folder):
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        fs, path = data_filesystem(folder)
        fs.pipe_file(f"{path}/{name}", buffer.getvalue())  # an S3 object appears only once complete
        return f"{folder}/{name}"
    Path(folder).mkdir(parents=True, exist_ok=True)
    path = Path(folder) / name
    tmp = Path(folder) / f".{name}.tmp"  # not matched by the source glob until renamed
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return str(path)


def _utc(moment: datetime) -> pd.Timestamp:
    """A timestamp in UTC; naive values are taken as UTC (as Feast does)."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _parts(view: FeatureView) -> tuple[Any, list[str]]:
    """Offline part files of a registered view (with their filesystem)."""
    return _part_files(source_folder(view))


def _rows_between(fs: Any, parts: list[str], start: datetime, end: datetime) -> int:
    """Offline rows with ``start <= event_timestamp <= end`` (Feast's materialization filter)."""
    stamps = pads.dataset(parts, format="parquet", filesystem=fs).to_table(columns=[TIMESTAMP_FIELD])
    values = stamps.column(TIMESTAMP_FIELD).to_pandas()
    return int(((values >= pd.Timestamp(start)) & (values <= pd.Timestamp(end))).sum())


def materialize(
    store: FeatureStore, palette_set: PaletteSet | None = None, end_date: datetime | None = None
) -> MaterializeReport:
    """``materialize_incremental`` up to ``end_date`` (now) for the set's views (all views) that hold offline rows."""
    end = _utc(end_date or datetime.now(UTC)).to_pydatetime()
    wanted = {p.view_name() for p in palette_set} if palette_set is not None else None
    views, skipped, plans = [], [], []
    for view in store.list_feature_views():
        if (view.name not in wanted) if wanted is not None else ("palette" not in view.tags):
            continue  # only palette views: other teams' views may not be parquet FileSources
        fs, parts = _parts(view)
        if not parts:
            skipped.append(view.name)
            continue
        start = _utc(view.most_recent_end_time or datetime.now(UTC) - FIRST_WINDOW).to_pydatetime()
        plans.append(ViewMaterialization(view=view.name, start=start, end=end,
                                         rows=_rows_between(fs, parts, start, end)))
        views.append(view.name)
    if wanted is not None and (unknown := wanted - set(views) - set(skipped)):
        raise SettingsError(f"materialize: feature views {sorted(unknown)} are not registered; call apply_definitions")
    started = time.perf_counter()
    if views:
        # Feast prints a coloured per-view progress report to stdout; the returned report says the same in one line
        # (the Prefect tasks calling this keep log_prints off, so the print reaches this redirect, not the run log)
        if _STORE_OPTIONS.get("s3") is not None:
            _duckdb_reads_s3()
        with registry_write(store), contextlib.redirect_stdout(io.StringIO()):
            store.materialize_incremental(end_date=end, feature_views=views)
    seconds = time.perf_counter() - started
    rows = sum(p.rows for p in plans)
    return MaterializeReport(
        views=plans, skipped=sorted(skipped), rows=rows, seconds=round(seconds, 3),
        rows_per_second=round(rows / seconds, 1) if seconds > 0 else 0.0,
    )


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
        if not _parts(store.get_feature_view(projection.name))[1]:
            raise StorageError(
                f"feature view {projection.name!r} of service {feature_service!r} has no offline rows; "
                "call write_new_features first"
            )
    columns = _feature_columns(service)
    unique = list(dict.fromkeys(image_ids))
    stamp = _utc(at or datetime.now(UTC)).floor("us")
    stamps = pd.Series([stamp] * len(unique), dtype="datetime64[us, UTC]")
    entity_df = pd.DataFrame({JOIN_KEY: unique, TIMESTAMP_FIELD: stamps})
    if _STORE_OPTIONS.get("s3") is not None:
        _duckdb_reads_s3()
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
        feature_service=name, rows=len(frame), rows_missing=missing, features=len(columns),
        seconds=round(time.perf_counter() - started, 3),
    )


def apply_filters(frame: pd.DataFrame, filters: Sequence[FilterSpec]) -> tuple[pd.DataFrame, FilterReport]:
    """Keep rows passing every filter; rows with a missing (NaN) filter feature are dropped and counted."""
    columns = [c for c in frame.columns if c != JOIN_KEY]
    keep = pd.Series(True, index=frame.index)
    missing = pd.Series(False, index=frame.index)
    outcomes = []
    for index, spec in enumerate(filters):
        if spec.feature not in columns:
            raise ParameterError(
                f"features.filters[{index}].feature: unknown feature {spec.feature!r}; "
                f"allowed values: {', '.join(columns) or '(no feature columns)'}"
            )
        values = pd.to_numeric(frame[spec.feature], errors="coerce")
        passed = _OPS[spec.op](values, spec.value) & values.notna()
        missing |= values.isna()
        keep &= passed
        failed = int((~passed).sum())
        outcomes.append(FilterOutcome(feature=spec.feature, op=spec.op, value=spec.value, rows_failed=failed))
    kept = frame[keep].reset_index(drop=True)
    report = FilterReport(rows_in=len(frame), rows_kept=len(kept), rows_missing=int(missing.sum()), filters=outcomes)
    return kept, report


def summary_statistics(frame: pd.DataFrame) -> dict[str, dict[str, float | int | None]]:
    """Per numeric feature: count, missing, mean, std, min, 5th/50th/95th percentile, max (NaN as None)."""
    stats: dict[str, dict[str, float | int | None]] = {}
    for column in frame.columns:
        if column == JOIN_KEY or not pd.api.types.is_numeric_dtype(frame[column]):
            continue
        values = frame[column].astype("float64")
        present = values.dropna()
        row: dict[str, float | int | None] = {"count": int(present.size), "missing": int(values.isna().sum())}
        for key, value in (
            ("mean", present.mean()), ("std", present.std(ddof=0)), ("min", present.min()),
            ("p05", present.quantile(0.05)), ("p50", present.quantile(0.5)), ("p95", present.quantile(0.95)),
            ("max", present.max()),
        ):
            row[key] = None if present.empty or not np.isfinite(value) else float(value)
        stats[column] = row
    return stats
