"""Content-addressed local cache of ingested objects, plus the per-object verdict index used for incremental ingest."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from canvascraft.files import atomic_path, atomic_write_text
from canvascraft.hashing import sha256_file, stable_hash


class ObjectCache:
    """``<root>/objects/ab/<sha256>`` for valid images, ``<root>/quarantine/<sha256>`` for rejected ones.

    Local paths derive only from content hashes, never from object keys, so no key can write outside the cache.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.quarantine = root / "quarantine"
        self.index_dir = root / "index"
        self._made_dirs: set[str] = set()  # folders known to exist: put() creates each at most once

    def _location(self, sha256: str, quarantined: bool) -> tuple[str, str]:
        """(folder, file) of an object as plain strings: the one definition of the layout (hot path of put)."""
        folder = f"{self.quarantine}" if quarantined else f"{self.objects}/{sha256[:2]}"
        return folder, f"{folder}/{sha256}"

    def object_path(self, sha256: str) -> Path:
        """Where a valid object's bytes live."""
        return Path(self._location(sha256, False)[1])

    def quarantine_path(self, sha256: str) -> Path:
        """Where a rejected object's bytes are kept for inspection."""
        return Path(self._location(sha256, True)[1])

    def put(self, sha256: str, data: bytes, *, quarantined: bool = False) -> Path:
        """Store bytes atomically under their hash (write to a temp name, then rename over the final name).

        No existence check first: the name is the content's hash, so replacing a present file rewrites the same
        bytes, and skipping the ``stat`` (plus one ``mkdir`` per folder, not per object) is what keeps a cold ingest
        at the speed of a bare download (bench/ingest.py; py-spy showed stat + mkdir costing as much as the write).
        """
        folder, path = self._location(sha256, quarantined)
        if folder not in self._made_dirs:
            os.makedirs(folder, exist_ok=True)
            self._made_dirs.add(folder)
        # two processes (or threads) caching the same object never share a temp file; the last rename wins and
        # both wrote the same bytes
        with atomic_path(Path(path), make_parents=False) as tmp:
            tmp.write_bytes(data)
        return Path(path)

    def defect(self, sha256: str, size: int, *, quarantined: bool = False, verify: bool = False) -> str | None:
        """Why the cached copy of an object cannot stand in for it (None: it can): absent, wrong size, wrong sha256.

        The size is always checked (one ``stat``): a copy truncated or overwritten outside ``put`` (a crash of an
        older writer, a full disk, a user's edit) is never reused. The sha256 (a full read) only with ``verify``.
        """
        path = self._location(sha256, quarantined)[1]
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return "absent"
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        if info.st_size != size:
            return f"{info.st_size} bytes, expected {size}"
        if verify and sha256_file(path) != sha256:
            return "sha256 differs from its name"
        return None

    def index_path(self, source: str) -> Path:
        """The verdict index of one source prefix."""
        return self.index_dir / f"{stable_hash(source)}.json"

    def load_index(self, source: str) -> dict[str, dict[str, Any]]:
        """``{key: {etag, size, sha256, verdict...}}`` from the previous ingest of ``source``."""
        try:
            return json.loads(self.index_path(source).read_text())["objects"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return {}

    def save_index(self, source: str, objects: dict[str, dict[str, Any]]) -> None:
        """Replace the verdict index of ``source`` atomically."""
        # a unique temp name per call: two ingests of one source (threads or processes) may save at once
        atomic_write_text(self.index_path(source), json.dumps({"source": source, "objects": objects}))
