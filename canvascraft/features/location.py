"""Where Feast's files live: the one data-dir rule, and the filesystem of an offline location.

``feast_data_dir`` is the only place that decides where the registry and the offline parquet are:
``CANVASCRAFT_FEAST_DATA`` when set, else ``<artifact root>/feast`` for an S3 artifact root, else ``<home>/feast``.
``open_store``, ``feature_repo/`` (``feast apply``), the offline writes and the palette chunks all ask it. This
module does not import Feast (slow cold), so light callers can resolve paths without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from canvascraft.errors import SettingsError
from canvascraft.settings import Settings, get_settings

DATA_DIR_ENV = "CANVASCRAFT_FEAST_DATA"
LOCAL_FOLDER = "feast"

# s3fs options of the last opened store (its settings' endpoint and keys): the offline helpers take store paths
_S3_OPTIONS: dict[str, dict[str, Any]] = {}


def check_data_dir(value: str) -> str:
    """An absolute folder or an ``s3a://`` URL (DuckDB reads it through a registered s3fs); else a clear error."""
    if value.startswith("s3a://"):
        return value.rstrip("/")
    if "://" in value:
        raise SettingsError(
            f"{DATA_DIR_ENV} {value!r}: allowed values are an absolute folder or s3a://BUCKET/PREFIX "
            "(s3a: DuckDB reads it through s3fs; an s3:// path makes it download its httpfs extension)"
        )
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise SettingsError(
            f"{DATA_DIR_ENV} must be an absolute path (Feast resolves relative ones per process), got {value!r}"
        )
    return str(path)


def local_feast_folder(settings: Settings) -> Path:
    """``<home>/feast``: the data dir of a one-machine setup, and the online sqlite of a remote data dir."""
    return settings.home / LOCAL_FOLDER


def feast_data_dir(settings: Settings | None = None) -> str:
    """Where offline parquet and the registry live: ``CANVASCRAFT_FEAST_DATA`` when set, else ``<artifact root>/feast``
    for an S3 artifact root (as ``s3a://``, the scheme DuckDB reads through s3fs), else ``<home>/feast``."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    if value:
        return check_data_dir(value)
    settings = settings or get_settings()
    root = settings.resolved_artifact_root
    if root.startswith("s3://"):
        return "s3a://" + root[len("s3://") :].rstrip("/") + "/" + LOCAL_FOLDER
    return str(local_feast_folder(settings))


def data_dir_from_env() -> str:
    """The data dir for the ``feast`` CLI: ``feature_store.yaml`` expands ``CANVASCRAFT_FEAST_DATA``: it must be set."""
    if not os.environ.get(DATA_DIR_ENV, "").strip():
        raise SettingsError(
            f"{DATA_DIR_ENV} is not set; feature_repo/feature_store.yaml and the palette sources need it, "
            f'e.g. export {DATA_DIR_ENV}="$CANVASCRAFT_HOME/feast" (absolute path) or s3a://BUCKET/PREFIX/feast'
        )
    return feast_data_dir()


def feast_environment(settings: Settings | None = None) -> dict[str, str]:
    """The variables ``feature_store.yaml`` expands; pass them to ``feast`` CLI subprocesses too."""
    return {DATA_DIR_ENV: feast_data_dir(settings)}


def is_remote(data_dir: str) -> bool:
    """True for an ``s3a://`` data dir (shared by every worker), False for a local folder."""
    return data_dir.startswith("s3a://")


def remember_s3_options(options: dict[str, Any]) -> None:
    """Keep the s3fs options of the store just opened: later offline reads and writes of its paths use them."""
    _S3_OPTIONS["s3"] = options


def s3_options() -> dict[str, Any] | None:
    """The s3fs options of the last opened remote store (None when no remote store was opened)."""
    return _S3_OPTIONS.get("s3")


def data_filesystem(path: str) -> tuple[Any, str]:
    """The fsspec filesystem and bare path of an offline location (local folder, or s3a:// with the settings' S3)."""
    import fsspec

    from canvascraft.artifact_root import storage_options

    options: dict[str, Any] = {}
    if is_remote(path):
        options = {**(s3_options() or {})} or storage_options(get_settings(), force_s3=True)
    return fsspec.core.url_to_fs(path, **options)
