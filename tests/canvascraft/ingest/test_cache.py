"""The content-addressed object cache: integrity of cached copies and writes that concurrent writers cannot tear."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from canvascraft.files import is_temp_name
from canvascraft.hashing import sha256_bytes
from canvascraft.ingest.cache import ObjectCache

DATA = bytes(range(256)) * 64


def test_an_intact_copy_has_no_defect_and_a_damaged_one_says_what_is_wrong(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path)
    sha = sha256_bytes(DATA)
    assert cache.defect(sha, len(DATA)) == "absent"
    path = cache.put(sha, DATA)
    assert cache.defect(sha, len(DATA)) is None and cache.defect(sha, len(DATA), verify=True) is None
    path.write_bytes(DATA[:100])  # truncated
    assert cache.defect(sha, len(DATA)) == f"100 bytes, expected {len(DATA)}"
    path.write_bytes(DATA + b"x")  # wrong size the other way
    assert cache.defect(sha, len(DATA)) == f"{len(DATA) + 1} bytes, expected {len(DATA)}"
    path.write_bytes(bytes(reversed(DATA)))  # right size, wrong bytes: only a full read can tell
    assert cache.defect(sha, len(DATA)) is None
    assert cache.defect(sha, len(DATA), verify=True) == "sha256 differs from its name"
    assert cache.defect(sha, len(DATA), quarantined=True) == "absent"  # the two places are told apart


def test_a_failed_put_leaves_neither_a_temp_file_nor_a_damaged_copy(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path)
    sha = sha256_bytes(DATA)
    cache.put(sha, DATA)
    broken = memoryview(DATA)
    broken.release()  # writing it fails after the temp file was created, like a write that meets a full disk
    with pytest.raises(ValueError, match="released"):
        cache.put(sha, broken)  # type: ignore[arg-type]
    folder = cache.object_path(sha).parent
    assert cache.object_path(sha).read_bytes() == DATA  # the final name still holds the intact copy
    assert [p.name for p in folder.iterdir()] == [sha]  # and the temp file is gone


def test_threads_saving_one_index_at_once_never_collide(tmp_path: Path) -> None:
    """Two ingests of one source in one process (threads) save its index at the same moment, many times."""
    cache = ObjectCache(tmp_path)
    objects = {f"k{i}": {"etag": f"e{i}", "size": i} for i in range(2000)}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def save() -> None:
        barrier.wait()
        try:
            for _ in range(40):
                cache.save_index("s3://b/p", objects)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=save) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cache.load_index("s3://b/p") == objects
    assert not [p for p in cache.index_dir.iterdir() if is_temp_name(p.name) or p.name.startswith(".")]
