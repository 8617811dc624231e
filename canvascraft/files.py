"""Local file writes that a reader never sees half-done: write a temp file beside the target, then rename."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# ".<target name>.<pid>.<8 hex>.tmp": what atomic_write_bytes leaves beside a target while it writes
_TEMP_NAME = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")


def is_temp_name(name: str) -> bool:
    """Whether a file name is an in-flight temp file of ``atomic_write_bytes`` (never part of a published folder)."""
    return bool(_TEMP_NAME.match(name))


def temp_path(path: Path, *, make_parents: bool = True) -> Path:
    """A temp file name beside ``path`` that no other writer (thread or process) uses; parents are created."""
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    # pid + random suffix: no two writers ever share a temp file, so concurrent writers of one target each
    # rename their own complete file and the last rename wins
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


@contextmanager
def atomic_path(path: Path, *, make_parents: bool = True) -> Iterator[Path]:
    """Yield a temp path to write; on success it is renamed onto ``path`` (POSIX rename), else removed.

    The one way CanvasCraft writes a file a concurrent reader may open: the reader sees the old file or the whole
    new one, and a failed write (disk full, interrupt) leaves no temp file behind.
    """
    tmp = temp_path(path, make_parents=make_parents)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (POSIX rename); parents are created."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))
