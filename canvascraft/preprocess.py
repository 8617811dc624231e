"""Preprocess: apply the brush stack to every image of a snapshot and publish it as content-defined pieces.

The snapshot is cut into pieces (``canvascraft.pieces``); each piece is computed on its own (a mapped Prefect task
in the flow, any worker or Ray node) and stored content-addressed, so a dataset version that adds one image
recomputes one piece. The ``ShardSet`` of a (dataset version, brush-stack hash, seed) is a small index, published
under ``shards/<dataset version>/<stack key>`` after every piece it lists exists: a reader sees all or nothing.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field, model_validator
from safetensors.torch import load_file

from canvascraft.artifact_root import ArtifactRoot
from canvascraft.brushes import BrushStack
from canvascraft.decoding import load_image_pil
from canvascraft.errors import CanvasCraftError
from canvascraft.hashing import stable_hash
from canvascraft.ingest.cache import ObjectCache
from canvascraft.ingest.manifest import SnapshotManifest
from canvascraft.pieces import Piece, PieceResult, largest_first, mixed_shapes_error, plan_pieces, preprocess_piece

LEGACY_SHARD_SIZE = 4096  # images per file of a shard set written before pieces (read-only support)
_INDEX = "index.json"  # the ShardSet of a published folder (the artifact root's marker says it is complete)

load_image = load_image_pil  # the reference decoder, kept under its old name for its importers


class ShardSet(BaseModel):
    """A preprocessed dataset: its index key in the artifact root (any worker reads it) and its pieces, in order."""

    key: str = Field(description="Artifact-root key of the index folder: shards/<dataset version>/<stack key>.")
    path: str = Field(description="Local read-through copy of the index folder on the machine that read it.")
    dataset_version: str
    stack_key: str
    count: int
    shape: list[int]
    pieces: list[str] = Field(description="Artifact-root keys of the piece files (safetensors), in image order.")
    counts: list[int] = Field(description="Images in each piece.")
    image_ids: list[str]
    labels: list[str | None]
    brushes: list[dict[str, Any]]
    seed: int
    reuse: Literal["computed", "reused", "cached"] = "computed"
    pieces_computed: int = Field(default=0, description="Pieces this run computed (the others already existed).")
    seconds: float = 0.0

    @model_validator(mode="before")
    @classmethod
    def _legacy_layout(cls, data: Any) -> Any:
        # an index written before pieces names files inside its own folder, LEGACY_SHARD_SIZE images each
        if isinstance(data, dict) and "pieces" not in data and "shards" in data:
            names, count = data["shards"], int(data["count"])
            data = {
                **data,
                "pieces": [f"{data['key']}/{name}" for name in names],
                "counts": [min(LEGACY_SHARD_SIZE, count - i * LEGACY_SHARD_SIZE) for i in range(len(names))],
            }
        return data

    @property
    def reused(self) -> bool:
        """Whether the whole set already existed (found in the artifact root or Prefect's cache)."""
        return self.reuse != "computed"

    def files(self) -> list[str]:
        """Artifact-root keys of the shard files, in image order (``ArtifactRoot.fetch`` gives a local path)."""
        return list(self.pieces)


def shard_set_key(dataset_version: str, key: str) -> str:
    """Artifact-root key of a shard set's index: content-addressed by dataset version and brush-stack key."""
    return f"shards/{dataset_version}/{key}"


def stack_key(stack: BrushStack, seed: int) -> str:
    """Cache key of a brush stack's output: its resolved config (each brush's name, params and code version above
    1), plus the seed when a brush is random."""
    random = any(b.random for b in stack.brushes)
    return stable_hash({"brushes": stack.config(), "seed": seed if random else None})


def plan_snapshot(manifest: SnapshotManifest, key: str) -> list[Piece]:
    """The content-defined pieces of a snapshot for one stack key (an empty snapshot is an error)."""
    if not manifest.entries:
        raise CanvasCraftError(f"snapshot {manifest.dataset_version} has no valid images to preprocess")
    return plan_pieces(manifest.entries, key)


def assemble_shard_set(
    manifest: SnapshotManifest,
    stack: BrushStack,
    seed: int,
    pieces: Sequence[Piece],
    results: Sequence[PieceResult],
    artifacts: ArtifactRoot,
    scratch: Path,
) -> ShardSet:
    """Check the pieces fit together and publish the shard set's index (after every piece exists).

    ``results`` may come in any order (workers take the largest pieces first); the index lists them in ``pieces``'
    order, which is the manifest's.
    """
    key = stack_key(stack, seed)
    by_key = {r.key: r for r in results}
    missing = [p.object_key for p in pieces if p.object_key not in by_key]
    if missing:
        raise CanvasCraftError(
            f"shard set {shard_set_key(manifest.dataset_version, key)}: no result for "
            f"{len(missing)} of its {len(pieces)} pieces (e.g. {missing[0]})"
        )
    results = [by_key[p.object_key] for p in pieces]
    shapes = sorted({tuple(r.shape) for r in results})
    if len(shapes) != 1:
        raise mixed_shapes_error(stack, shapes)
    folder_key = shard_set_key(manifest.dataset_version, key)
    shard_set = ShardSet(
        key=folder_key,
        path=str(artifacts.local(folder_key)),
        dataset_version=manifest.dataset_version,
        stack_key=key,
        count=sum(r.count for r in results),
        shape=list(shapes[0]),
        pieces=[r.key for r in results],
        counts=[r.count for r in results],
        image_ids=[e.sha256 for p in pieces for e in p.entries],
        labels=[e.label for p in pieces for e in p.entries],
        brushes=stack.config(),
        seed=seed,
        pieces_computed=sum(r.computed for r in results),
    )
    with tempfile.TemporaryDirectory(dir=_scratch(scratch)) as tmp:
        (Path(tmp) / _INDEX).write_text(shard_set.model_dump_json())
        # the index only after every piece it names: a reader on any worker sees all of it or nothing. Two runs
        # publishing the same key write the same bytes (content-addressed), so neither can corrupt the other.
        artifacts.put_folder(folder_key, Path(tmp))
    return shard_set


def preprocess(
    manifest: SnapshotManifest,
    cache_root: Path,
    stack: BrushStack,
    artifacts: ArtifactRoot,
    *,
    seed: int,
    on_progress: Callable[[int], None] | None = None,
    max_workers: int = 1,
) -> ShardSet:
    """Apply ``stack`` to every manifest image, piece by piece on ``max_workers`` threads; reuse what exists."""
    started = time.perf_counter()
    key = stack_key(stack, seed)
    if (found := read_shard_index(artifacts, shard_set_key(manifest.dataset_version, key))) is not None:
        return found.model_copy(
            update={"reuse": "reused", "pieces_computed": 0, "seconds": round(time.perf_counter() - started, 3)}
        )
    pieces = plan_snapshot(manifest, key)
    cache = ObjectCache(cache_root)
    paths = {e.sha256: cache.object_path(e.sha256) for e in manifest.entries}

    def run(piece: Piece) -> PieceResult:
        result = preprocess_piece(piece, stack, artifacts, paths, seed=seed)
        if on_progress:
            on_progress(result.count)
        return result

    if max_workers <= 1:
        results = [run(piece) for piece in pieces]
    else:
        with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="preprocess") as pool:
            results = list(pool.map(run, largest_first(pieces)))
    shard_set = assemble_shard_set(manifest, stack, seed, pieces, results, artifacts, cache_root)
    return shard_set.model_copy(update={"seconds": round(time.perf_counter() - started, 3)})


def _scratch(cache_root: Path) -> Path:
    """A scratch folder on the cache's filesystem for building an index before it is published."""
    folder = cache_root / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def read_shard_index(artifacts: ArtifactRoot, folder_key: str) -> ShardSet | None:
    """The published shard set under ``folder_key`` (its index only, nothing else fetched), or None."""
    if not artifacts.has_folder(folder_key):  # the root's marker, not a local copy left by another root
        return None
    local = artifacts.folder(folder_key)
    if local is None:
        return None
    shard_set = ShardSet.model_validate_json((local / _INDEX).read_text())
    return shard_set.model_copy(update={"path": str(local)})


def find_shard_set(artifacts: ArtifactRoot, folder_key: str) -> ShardSet | None:
    """The published shard set with every piece fetched to this machine (``load_shards(s)`` needs no root), or None.

    Readers that stream pieces use ``read_shard_index`` and fetch ``ShardSet.files()`` one by one instead.
    """
    shard_set = read_shard_index(artifacts, folder_key)
    if shard_set is not None:
        _piece_paths(shard_set, artifacts)
    return shard_set


def _piece_paths(shard_set: ShardSet, artifacts: ArtifactRoot | None) -> list[Path]:
    """Local paths of a shard set's pieces: fetched from the root, or this machine's copies when no root is given."""
    if artifacts is None:
        parts = shard_set.key.strip("/").split("/")
        index = Path(shard_set.path)
        if index.parts[-len(parts) :] != tuple(parts):
            raise CanvasCraftError(
                f"shard set {shard_set.key}: its local copy {index} is not under a copy of the "
                "artifact root; pass the artifact root to read its pieces"
            )
        local_root = index.parents[len(parts) - 1]
        paths = [local_root / key for key in shard_set.files()]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise CanvasCraftError(
                f"shard set {shard_set.key}: {len(missing)} pieces are not on this machine (e.g. "
                f"{missing[0].name}); read it with find_shard_set or pass the artifact root"
            )
        return paths
    paths = []
    for key in shard_set.files():
        path = artifacts.fetch(key)
        if path is None:
            raise CanvasCraftError(
                f"shard set {shard_set.key}: piece {key} is not in the artifact root "
                f"{artifacts.url}; rerun the train flow's preprocess stage"
            )
        paths.append(path)
    return paths


def load_shards(shard_set: ShardSet, artifacts: ArtifactRoot | None = None) -> torch.Tensor:
    """All preprocessed images of a shard set as one N x C x H x W float tensor (fetched from the root if given)."""
    if artifacts is not None and not artifacts.has_folder(shard_set.key):
        raise CanvasCraftError(
            f"shard set {shard_set.key} is not in the artifact root {artifacts.url}; "
            "rerun the train flow's preprocess stage"
        )
    return torch.cat([load_file(str(path))["images"] for path in _piece_paths(shard_set, artifacts)])
