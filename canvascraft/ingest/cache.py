"""Content-addressed local cache of ingested objects, plus the per-object verdict index used for incremental ingest."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from canvascraft.hashing import stable_hash


class ObjectCache:
    """``<root>/objects/ab/<sha256>`` for valid images, ``<root>/quarantine/<sha256>`` for rejected ones.

    Local paths derive only from content hashes, never from object keys, so no key can write outside the cache.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.quarantine = root / "quarantine"
        self.index_dir = root / "index"

    def object_path(self, sha256: str) -> Path:
        """Where a valid object's bytes live."""
        return self.objects / sha256[:2] / sha256

    def quarantine_path(self, sha256: str) -> Path:
        """Where a rejected object's bytes are kept for inspection."""
        return self.quarantine / sha256

    def put(self, sha256: str, data: bytes, *, quarantined: bool = False) -> Path:
        """Store bytes atomically under their hash (a no-op when present)."""
        path = self.quarantine_path(sha256) if quarantined else self.object_path(sha256)
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path

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
        path = self.index_path(source)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"source": source, "objects": objects}))
        os.replace(tmp, path)
