"""The artifact root: objects and atomically published folders, read through a local cache, local or on S3."""

from __future__ import annotations

from pathlib import Path

import pytest

from canvascraft.artifact_root import MARKER, ArtifactRoot
from canvascraft.files import atomic_write_bytes, is_temp_name


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
    assert (
        local is not None
        and (local / "a.bin").read_bytes() == b"a" * 100
        and (local / "sub" / "b.txt").read_text() == "b"
    )
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


# -- concurrent writers: two real processes (spawned, so nothing is shared but the files and the S3 server) ---------

_FILES = {f"shard-{i:02d}.bin": bytes([i]) * (512 * 1024 + i) for i in range(6)} | {"sub/index.json": b'{"n": 6}'}
_REPORT = b"report " * 4096


def _write_source(folder: Path) -> None:
    """What one run builds before publishing: the same bytes in both runs (the keys are content-addressed)."""
    for name, data in _FILES.items():
        atomic_write_bytes(folder / name, data)


def _publisher(
    url: str,
    cache_dir: str,
    options: dict,
    source: str,
    in_place: bool,
    keys: list[str],
    lockstep: bool,
    barrier,
    errors,
) -> None:
    """One run: publish each key's folder and report, then read both back through the shared local cache."""
    try:
        root = ArtifactRoot(url, Path(cache_dir), options)
        barrier.wait(timeout=120)
        for key in keys:
            if lockstep:  # both runs start each key together: they write the same files at the same moment
                barrier.wait(timeout=120)
            # in place: the run builds inside the root's own copy of the key (put_folder's source == target)
            folder = root.local(key) if in_place else Path(source)
            _write_source(folder)
            root.put_folder(key, folder)
            root.put_bytes(f"reports/{key}.json", _REPORT)
            if root.folder(key) is None or root.get_bytes(f"reports/{key}.json") != _REPORT:
                raise RuntimeError(f"{key}: this run's own result is not readable back")
    except BaseException:  # the parent asserts on this text: a crash in a child must fail the test visibly
        import traceback

        errors.put(traceback.format_exc())
        barrier.abort()  # the other run stops waiting for this one
        raise


def _race(
    artifacts: ArtifactRoot, tmp_path: Path, in_place: tuple[bool, bool], keys: list[str], lockstep: bool
) -> None:
    """Run two publishers at once (started by one barrier); fail on any crash or hang of either."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier, errors = ctx.Barrier(2), ctx.Queue()
    options = {} if artifacts.is_local else artifacts.fs.storage_options
    workers = []
    for number, flag in enumerate(in_place):
        source = tmp_path / f"run-{number}"
        source.mkdir()
        _write_source(source)
        workers.append(
            ctx.Process(
                target=_publisher,
                args=(
                    artifacts.url,
                    str(artifacts.cache_dir),
                    options,
                    str(source),
                    flag,
                    keys,
                    lockstep,
                    barrier,
                    errors,
                ),
            )
        )
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    crashes = []
    while not errors.empty():
        crashes.append(errors.get(timeout=5))
    assert not crashes, "\n".join(crashes)
    assert [worker.exitcode for worker in workers] == [0, 0]


def _assert_one_intact_result(artifacts: ArtifactRoot, tmp_path: Path, keys: list[str]) -> None:
    """Each key: the marker lists exactly the files, each whole, seen from this machine and from a fresh one."""
    expected = {name: len(data) for name, data in _FILES.items()}
    fresh = _other_machine(artifacts, tmp_path, "after-race")
    for key in sorted(set(keys)):
        assert artifacts.get_json(f"{key}/{MARKER}") == {"files": expected}
        for root in (artifacts, fresh):
            local = root.folder(key)
            assert local is not None
            assert {name: (local / name).read_bytes() for name in _FILES} == _FILES
        prefix = artifacts._path(key) + "/"
        stored = {path.removeprefix(prefix) for path in artifacts.fs.find(prefix)}
        assert stored == {*_FILES, MARKER}  # nothing else published under the key (no temp or partial files)
        assert fresh.get_bytes(f"reports/{key}.json") == _REPORT
    for folder in (artifacts.local(""), artifacts.cache_dir):  # no half-written file left behind anywhere
        assert not [path for path in folder.rglob("*") if is_temp_name(path.name)]


def test_two_runs_publishing_the_same_folders_at_once_both_succeed(artifacts: ArtifactRoot, tmp_path: Path) -> None:
    keys = [f"shards/set-{number}" for number in range(8)]
    _race(artifacts, tmp_path, (False, False), keys, lockstep=True)
    _assert_one_intact_result(artifacts, tmp_path, keys)


def test_a_run_building_in_place_races_a_publisher(artifacts: ArtifactRoot, tmp_path: Path) -> None:
    """The in-place run lists its folder while the other run's temp files come and go in it (one key, many times).

    Before temp files were skipped by name, 150 rounds on a local root crashed (FileNotFoundError on a temp file the
    other run had just renamed) in 3 runs out of 3. On S3 each round also uploads, so fewer rounds fit the budget.
    """
    keys = ["references/same"] * (150 if artifacts.is_local else 30)
    _race(artifacts, tmp_path, (True, False), keys, lockstep=False)
    _assert_one_intact_result(artifacts, tmp_path, keys)


def test_temp_files_of_another_writer_are_never_published(artifacts: ArtifactRoot, tmp_path: Path) -> None:
    """A folder being written into by another run holds its in-flight temp files: they are not part of the folder."""
    source = tmp_path / "src"
    _write_source(source)
    (source / ".shard-00.bin.4242.0badc0de.tmp").write_bytes(b"half")  # as atomic_write_bytes names one mid-write
    artifacts.put_folder("shards/t", source)
    assert artifacts.get_json(f"shards/t/{MARKER}") == {"files": {name: len(data) for name, data in _FILES.items()}}
    assert not artifacts.exists("shards/t/.shard-00.bin.4242.0badc0de.tmp")
