"""The artifact root: objects and atomically published folders, read through a local cache, local or on S3."""

from __future__ import annotations

from pathlib import Path

import pytest

from canvascraft.artifact_root import MARKER, ArtifactRoot


def _other_machine(root: ArtifactRoot, tmp_path: Path, name: str = "other") -> ArtifactRoot:
    """The same root seen from another machine: same URL and options, its own empty cache."""
    return ArtifactRoot(root.url, tmp_path / f"{name}-cache", root.fs.storage_options)


def test_objects_round_trip_and_absent_is_none(artifacts: ArtifactRoot, tmp_path: Path) -> None:
    uri = artifacts.put_json("manifests/abc.json", {"entries": [1, 2]})
    assert uri == f"{artifacts.url}/manifests/abc.json"
    other = _other_machine(artifacts, tmp_path)
    assert other.get_json("manifests/abc.json") == {"entries": [1, 2]}
    assert other.get_bytes("manifests/nope.json") is None
    assert other.exists("manifests/abc.json") and not other.exists("manifests/nope.json")


def test_folder_is_visible_only_once_complete(artifacts: ArtifactRoot, tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.bin").write_bytes(b"a" * 100)
    (source / "sub" / "b.txt").write_text("b")
    # files without the marker (a writer that died half-way) are not a folder
    artifacts.put_bytes("shards/x/a.bin", b"a" * 100)
    assert not artifacts.has_folder("shards/x") and _other_machine(artifacts, tmp_path, "o1").folder("shards/x") is None
    artifacts.put_folder("shards/x", source)
    assert artifacts.has_folder("shards/x")
    local = _other_machine(artifacts, tmp_path, "o2").folder("shards/x")
    assert local is not None and (local / "a.bin").read_bytes() == b"a" * 100 and (local / "sub" / "b.txt").read_text() == "b"
    assert (local / MARKER).is_file()


def test_truncated_local_copy_is_fetched_again(artifacts: ArtifactRoot, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "data.bin").write_bytes(bytes(range(256)) * 4)
    artifacts.put_folder("refs/v1", source)
    if artifacts.is_local:
        pytest.skip("a local root is its own copy: there is no cache to truncate")
    other = _other_machine(artifacts, tmp_path)
    local = other.folder("refs/v1")
    assert local is not None
    (local / "data.bin").write_bytes(b"short")
    again = other.folder("refs/v1")
    assert again is not None and (again / "data.bin").read_bytes() == bytes(range(256)) * 4


def test_deleting_the_cache_changes_nothing_but_speed(artifacts: ArtifactRoot, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "t.parquet").write_bytes(b"PAR1")
    artifacts.put_folder("references/v/h", source)
    import shutil

    shutil.rmtree(artifacts.cache_dir, ignore_errors=True)
    local = artifacts.folder("references/v/h")
    assert local is not None and (local / "t.parquet").read_bytes() == b"PAR1"
