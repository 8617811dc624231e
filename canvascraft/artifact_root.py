"""The artifact root: where every piece of run state that a later run reads lives (an ``s3://bucket/prefix``).

Manifests, shard sets, reference feature tables, FID reference statistics, drift reports and Ray Tune experiments
are written here, so a flow run may land on any worker of the pool. The local home keeps a read-through copy:
deleting it changes no result, only speed.

Folders are published atomically: every file is uploaded first and a ``_COMPLETE.json`` marker (names and sizes)
last, so a reader either sees a whole folder or none (S3 has no rename). Keys are content-addressed by the
callers (dataset version = manifest hash, stack key, palette-set hash), so two writers of one key write the same
bytes and either one's marker is right. Concurrent writers (two runs finishing the same key) are safe: every local
write goes to a temp file of its own and is renamed into place, and a folder's listing ignores the temp files
another writer has in flight. fsspec (s3fs for ``s3://``, the local filesystem for a path) does the I/O: one code
path for the embedded S3, MinIO, AWS and a plain folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from canvascraft.errors import StorageError
from canvascraft.files import atomic_path, atomic_write_bytes, is_temp_name
from canvascraft.settings import Settings

MARKER = "_COMPLETE.json"


class ArtifactRoot:
    """An fsspec location with a local read-through cache; keys are ``/``-separated relative paths."""

    def __init__(self, url: str, cache_dir: Path, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.cache_dir = cache_dir
        self.fs, self._root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        self.is_local = isinstance(self.fs, LocalFileSystem)

    def __repr__(self) -> str:
        return f"ArtifactRoot({self.url!r})"

    def uri(self, key: str) -> str:
        """The full URI of a key (for links, logs and Ray's ``storage_path``)."""
        return f"{self.url}/{key.strip('/')}"

    def _path(self, key: str) -> str:
        return f"{self._root.rstrip('/')}/{key.strip('/')}"

    def local(self, key: str) -> Path:
        """Where a key's read-through copy lives on this machine (the root itself when it is a local folder)."""
        return Path(self._path(key)) if self.is_local else self.cache_dir / key.strip("/")

    # -- single objects -------------------------------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes) -> str:
        """Store one object (an S3 PUT is atomic; locally a temp file + rename) and keep the local copy."""
        try:
            if self.is_local:
                atomic_write_bytes(Path(self._path(key)), data)
            else:
                self.fs.pipe_file(self._path(key), data)
                atomic_write_bytes(self.local(key), data)
        except OSError as exc:
            raise StorageError(f"artifact root {self.url}: cannot write {key!r}: {exc}") from exc
        return self.uri(key)

    def put_json(self, key: str, value: Any) -> str:
        """Store a JSON document."""
        return self.put_bytes(key, json.dumps(value, indent=1, sort_keys=True, default=str).encode())

    def get_bytes(self, key: str) -> bytes | None:
        """An object's bytes, from the local copy when present, else fetched (None when the key does not exist)."""
        local = self.local(key)
        if local.is_file():
            return local.read_bytes()
        if self.is_local:
            return None
        try:
            data: bytes = self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"artifact root {self.url}: cannot read {key!r}: {exc}") from exc
        atomic_write_bytes(local, data)
        return data

    def fetch(self, key: str) -> Path | None:
        """A local path holding one object (the read-through copy, fetched once), or None when it does not exist.

        Content-addressed keys never change, so a present local copy is the object; readers such as safetensors'
        memory-mapped ``safe_open`` then share this file through the page cache.
        """
        local = self.local(key)
        if local.is_file():
            return local
        if self.is_local:
            return None
        try:
            with atomic_path(local) as tmp:  # streamed to disk: a shard is never held whole in memory
                self.fs.get_file(self._path(key), str(tmp))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"artifact root {self.url}: cannot read {key!r}: {exc}") from exc
        return local

    def get_json(self, key: str) -> Any:
        """A JSON document, or None when absent."""
        data = self.get_bytes(key)
        return None if data is None else json.loads(data)

    def exists(self, key: str) -> bool:
        """Whether an object exists at the root (not only in this machine's cache)."""
        return bool(self.fs.exists(self._path(key)))

    # -- folders --------------------------------------------------------------------------------------------------
    def has_folder(self, key: str) -> bool:
        """Whether a complete folder was published under ``key``."""
        return self.exists(f"{key.strip('/')}/{MARKER}")

    def put_folder(self, key: str, source: Path) -> str:
        """Publish a local folder: every file, then the completion marker (names and sizes) last."""
        key = key.strip("/")
        target = self.local(key)
        try:
            listing = _listing(source)
            if not self.is_local:
                for name in listing:
                    self.fs.put_file(str(source / name), self._path(f"{key}/{name}"))
            if source.resolve() != target.resolve():  # the root itself (local) or this machine's copy (S3)
                _copy_tree(source, target, listing)
        except OSError as exc:
            raise StorageError(f"artifact root {self.url}: cannot publish {key!r}: {exc}") from exc
        self.put_json(f"{key}/{MARKER}", {"files": listing})
        return self.uri(key)

    def folder(self, key: str) -> Path | None:
        """A local copy of a complete folder (fetched file by file where missing or of the wrong size), or None."""
        key = key.strip("/")
        local = self.local(key)
        # keys are content-addressed: a marker copied here once names the same files for good
        marker = self.get_json(f"{key}/{MARKER}")
        if marker is None:
            return None
        if self.is_local:
            return local
        for name, size in marker["files"].items():
            path = local / name
            if path.is_file() and path.stat().st_size == size:
                continue
            try:
                atomic_write_bytes(path, self.fs.cat_file(self._path(f"{key}/{name}")))
            except OSError as exc:
                raise StorageError(
                    f"artifact root {self.url}: folder {key!r} lists {name} but it cannot be read: {exc}"
                ) from exc
        return local


def _listing(source: Path) -> dict[str, int]:
    """``{relative name: size}`` of a folder's files, without the marker and other writers' in-flight temp files.

    ``source`` may be the published folder itself (a local root, or this machine's copy): another run writing the
    same key renames or removes its temp files there at any moment, so they are skipped by name before any ``stat``.
    """
    listing: dict[str, int] = {}
    for path in sorted(source.rglob("*")):
        if path.name == MARKER or is_temp_name(path.name) or not path.is_file():
            continue
        listing[path.relative_to(source).as_posix()] = path.stat().st_size
    return listing


def _copy_tree(source: Path, target: Path, listing: dict[str, int]) -> None:
    """Copy the listed files into ``target`` (each atomically)."""
    for name in listing:
        atomic_write_bytes(target / name, (source / name).read_bytes())


def storage_options(settings: Settings, *, force_s3: bool = False) -> dict[str, Any]:
    """s3fs options for the settings' S3 (endpoint and keys resolved like boto3's); none for a local root."""
    if not force_s3 and not settings.resolved_artifact_root.startswith("s3://"):
        return {}
    options: dict[str, Any] = {
        "client_kwargs": {"region_name": settings.s3_region},
        "skip_instance_cache": True,
        "use_listings_cache": False,
        # checksums only where S3 requires them: S3-compatible servers (the embedded rclone) answer a ranged read
        # with the whole object's checksum, which botocore's default validation then rejects
        "config_kwargs": {
            "response_checksum_validation": "when_required",
            "request_checksum_calculation": "when_required",
        },
    }
    if settings.resolved_s3_endpoint_url:
        options["endpoint_url"] = settings.resolved_s3_endpoint_url
    creds = settings.s3_credentials()
    if creds:
        options["key"], options["secret"] = creds["aws_access_key_id"], creds["aws_secret_access_key"]
    return options


def artifact_root(settings: Settings) -> ArtifactRoot:
    """The artifact root the settings name, with its read-through cache under ``<home>/cache/artifacts``."""
    return ArtifactRoot(
        settings.resolved_artifact_root, settings.home / "cache" / "artifacts", storage_options(settings)
    )
