"""Open the Feast store with services injected, serialise registry writes, and register palette definitions.

The repo's ``feature_store.yaml`` is the one-machine profile; ``open_store`` replaces its local pieces from
settings (registry + offline parquet under the artifact root, Redis online store) so every worker sees one store.
Where the files live is ``location.feast_data_dir``; offline writes are in ``offline``, materialization in
``materialize``, retrieval in ``retrieval``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import time
import warnings
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from feast import FeatureStore
from feast.constants import FEAST_FS_YAML_FILE_PATH_ENV_NAME

from canvascraft.errors import SettingsError, StorageError
from canvascraft.features.definitions import build_definitions, offline_folder
from canvascraft.features.location import (
    DATA_DIR_ENV,
    feast_data_dir,
    feast_environment,
    is_remote,
    local_feast_folder,
    remember_s3_options,
    s3_options,
)
from canvascraft.palettes import PaletteSet
from canvascraft.settings import Settings, get_settings

FEAST_YAML = "feature_store.yaml"


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
        with contextlib.suppress(Exception):  # exit-time cleanup must never raise
            backend.disconnect()
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
    if not is_remote(data_dir):
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
        "://" not in registry_path or registry_path.startswith(data_dir)
    )
    # only the yaml's *local* pieces are replaced: a profile naming its own services (SQL registry, a Redis) wins
    if redis_url is not None and online_is_local:
        values["online_store"] = {"type": "redis", "connection_string": feast_redis_connection(redis_url)}
    elif is_remote(data_dir) and online_is_local:  # no Redis: online store on this machine (the next run refills)
        local = local_feast_folder(settings)
        local.mkdir(parents=True, exist_ok=True)
        values["online_store"] = {"type": "sqlite", "path": str(local / "online.db")}
    registry_env: dict[str, str] = {}
    if is_remote(data_dir):
        options = storage_options(settings, force_s3=True)
        remember_s3_options(options)
    if is_remote(data_dir) and registry_is_local:
        values["registry"] = {
            **registry,
            "registry_type": "file",
            "path": "s3://" + data_dir[len("s3a://") :] + "/registry.pb",
        }
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


def duckdb_reads_s3() -> None:
    """Let DuckDB (Feast's offline store, through ibis) read ``s3a://`` part files via s3fs.

    ibis installs DuckDB's httpfs extension for ``s3://`` paths, a download this platform never makes; ``s3a://``
    goes to a filesystem registered on the connection instead. Registered once per connection.
    """
    import ibis
    import s3fs

    connection = ibis.get_backend().con
    if {"s3", "s3a", "s3fs"} & set(connection.list_filesystems()):
        return
    connection.register_filesystem(s3fs.S3FileSystem(**(s3_options() or {})))


def feast_redis_connection(url: str) -> str:
    """Feast's Redis ``connection_string`` (``host:port,db=N[,password=P][,ssl=true]``) from a ``redis://`` URL."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise SettingsError(
            f"CANVASCRAFT_REDIS_URL {url.split('@')[-1]!r} is not a redis://host:port/db URL; "
            "allowed schemes: redis, rediss"
        )
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
    if not is_remote(data_dir):
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
