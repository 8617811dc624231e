"""Content-defined pieces: boundaries follow the images, so one new image changes one piece."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from canvascraft.artifact_root import ArtifactRoot
from canvascraft.brushes import BrushStack
from canvascraft.errors import CanvasCraftError
from canvascraft.ingest.manifest import ManifestEntry
from canvascraft.pieces import MAX_SIZE, find_piece, is_boundary, plan_pieces, preprocess_piece

DIVISOR = 256


def entry(n: int) -> ManifestEntry:
    sha = hashlib.sha256(f"image-{n}".encode()).hexdigest()
    return ManifestEntry(
        uri=f"s3://b/p/{n:06d}.png", key=f"{n:06d}.png", etag="e", sha256=sha, size=1, width=8, height=8, mode="L"
    )


def keys(entries: list[ManifestEntry]) -> list[str]:
    return [p.key for p in plan_pieces(entries, "stack")]


ENTRIES = [entry(n) for n in range(6000)]


def test_plan_keeps_every_entry_in_order_within_bounds() -> None:
    pieces = plan_pieces(ENTRIES, "stack")
    assert [e for p in pieces for e in p.entries] == ENTRIES
    sizes = [len(p.entries) for p in pieces]
    assert all(16 <= s <= MAX_SIZE for s in sizes[:-1]) and 1 <= sizes[-1] <= MAX_SIZE
    assert 10 <= len(pieces) <= 50  # ~6000 / (16 + 256)
    assert all(is_boundary(p.entries[-1].sha256, DIVISOR) for p in pieces[:-1])  # cuts follow the content


def test_one_new_image_changes_one_piece() -> None:
    before = set(keys(ENTRIES))
    inserted = 0
    for n in range(6000, 6200):
        new = entry(n)
        if is_boundary(new.sha256, DIVISOR):
            continue  # a new cut: checked below
        position = (n * 7919) % len(ENTRIES)
        after = keys([*ENTRIES[:position], new, *ENTRIES[position:]])
        assert len(set(after) - before) == 1 and len(before - set(after)) == 1, position
        inserted += 1
    assert inserted > 150


def test_a_new_image_that_is_a_boundary_splits_its_piece_in_two() -> None:
    before = set(keys(ENTRIES))
    new = next(entry(n) for n in range(6000, 100_000) if is_boundary(entry(n).sha256, DIVISOR))
    after = keys([*ENTRIES[:3000], new, *ENTRIES[3000:]])
    assert len(set(after) - before) <= 2 and len(before - set(after)) <= 2


def test_removing_an_image_changes_one_piece() -> None:
    before = set(keys(ENTRIES))
    for position in range(100, 6000, 397):
        if is_boundary(ENTRIES[position].sha256, DIVISOR):
            continue
        after = keys(ENTRIES[:position] + ENTRIES[position + 1 :])
        assert len(set(after) - before) == 1, position


def test_piece_key_names_stack_and_content() -> None:
    a = plan_pieces(ENTRIES[:20], "stack-a", min_size=100)
    assert len(a) == 1
    assert a[0].key != plan_pieces(ENTRIES[:20], "stack-b", min_size=100)[0].key
    assert a[0].key != plan_pieces(ENTRIES[1:21], "stack-a", min_size=100)[0].key
    relabelled = [e.model_copy(update={"label": "x", "uri": e.uri + "2"}) for e in ENTRIES[:20]]
    assert a[0].key == plan_pieces(relabelled, "stack-a", min_size=100)[0].key  # only the pixels count


def test_bad_sizes_are_a_clear_error() -> None:
    with pytest.raises(CanvasCraftError, match=r"min_size \(9\) <= max_size \(4\)"):
        plan_pieces(ENTRIES, "s", min_size=9, max_size=4)


def _images(tmp_path: Path, count: int) -> tuple[list[ManifestEntry], dict[str, Path]]:
    from PIL import Image

    entries, paths = [], {}
    for n in range(count):
        e = entry(n)
        path = tmp_path / "objects" / e.sha256
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (10, 8), 10 * n).save(path, format="PNG")
        entries.append(e)
        paths[e.sha256] = path
    return entries, paths


def test_piece_is_stored_once_then_found(tmp_path: Path, artifacts: ArtifactRoot) -> None:
    entries, paths = _images(tmp_path, 5)
    stack = BrushStack.from_spec([{"name": "resize", "params": {"size": 4}}, {"name": "normalize"}])
    piece = plan_pieces(entries, "stack", min_size=10)[0]
    assert find_piece(artifacts, piece) is None
    first = preprocess_piece(piece, stack, artifacts, paths, seed=0)
    assert first.computed and first.count == 5 and first.shape == [3, 4, 5] and first.key == piece.object_key
    stored = load_file(str(artifacts.fetch(piece.object_key)))["images"]
    assert stored.shape == (5, 3, 4, 5) and stored.dtype == torch.float32
    for path in paths.values():
        path.unlink()  # a second worker with no images: it must not need them
    again = preprocess_piece(piece, stack, artifacts, paths, seed=0)
    assert not again.computed and again.model_dump(exclude={"computed", "seconds"}) == first.model_dump(
        exclude={"computed", "seconds"}
    )


def test_two_workers_writing_one_piece_write_the_same_bytes(tmp_path: Path) -> None:
    entries, paths = _images(tmp_path, 12)
    stack = BrushStack.from_spec([{"name": "gaussian_noise", "params": {"noise_ratio": 0.2}}])
    piece = plan_pieces(entries, "stack", min_size=20)[0]
    roots = [ArtifactRoot(str(tmp_path / f"root-{i}"), tmp_path / f"cache-{i}") for i in range(2)]
    preprocess_piece(piece, stack, roots[0], paths, seed=3)
    shared = ArtifactRoot(str(tmp_path / "shared"), tmp_path / "shared-cache")
    barrier = threading.Barrier(4)

    def write() -> None:
        barrier.wait()
        preprocess_piece(piece, stack, shared, paths, seed=3)

    threads = [threading.Thread(target=write) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    reference = roots[0].fetch(piece.object_key).read_bytes()
    assert shared.fetch(piece.object_key).read_bytes() == reference


def test_a_piece_is_found_in_its_root_not_in_a_local_copy_of_another(tmp_path: Path, s3_settings) -> None:
    """One home, two S3 artifact roots: the home's copy of root A's piece does not make root B hold it."""
    import uuid

    from canvascraft.artifact_root import storage_options
    from canvascraft.stack.s3_server import ARTIFACT_BUCKET

    entries, paths = _images(tmp_path, 3)
    stack = BrushStack.from_spec([{"name": "resize", "params": {"size": 4}}])
    piece = plan_pieces(entries, "stack", min_size=10)[0]
    a, b = (
        ArtifactRoot(
            f"s3://{ARTIFACT_BUCKET}/t-{uuid.uuid4().hex[:12]}", tmp_path / "home-cache", storage_options(s3_settings)
        )
        for _ in range(2)
    )
    assert preprocess_piece(piece, stack, a, paths, seed=0).computed
    assert find_piece(a, piece) is not None and find_piece(b, piece) is None
    assert preprocess_piece(piece, stack, b, paths, seed=0).computed and b.exists(piece.object_key)
