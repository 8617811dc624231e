"""Content-defined pieces of a snapshot: the unit a stage computes, caches and runs in parallel.

A manifest's entries (in manifest order) are cut into pieces whose boundaries depend on the images, not on their
positions: a piece ends after an entry whose sha256 falls in a 1-in-``divisor`` class (content-defined chunking, as
rsync/LBFS cut byte streams; Muthitacharoen et al., SOSP 2001), bounded by ``min_size`` and ``max_size``. Adding
or removing one image therefore changes the piece that holds it and leaves the others, and their keys, alone; only
a cut moved by the bounds ripples, up to the next natural boundary.

A piece of a brush stack's output is stored content-addressed, ``shards/pieces/<stack key>/<piece key>``, where the
piece key hashes the stack key and the piece's sha256 list: every dataset version holding the same run of images
reuses it. Each piece is two objects, the safetensors file (one tensor ``images``, N x C x H x W float32) first
and a small JSON marker (count, shape) last, so a piece whose marker exists is whole; two workers computing one
piece write the same bytes (the stack is deterministic per image), so neither can spoil the other's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import save

from canvascraft.artifact_root import ArtifactRoot
from canvascraft.brushes import BrushStack
from canvascraft.decoding import decode_rgb
from canvascraft.errors import CanvasCraftError
from canvascraft.hashing import stable_hash
from canvascraft.ingest.manifest import ManifestEntry

# A piece holds ~min_size + divisor images on average (geometric tail, capped by max_size): large enough that a
# task run's orchestration cost (tens of ms) is small next to its work, small enough that 1,797 digits make ~7
# pieces for two workers and that a changed image recomputes a few hundred images, not the dataset.
DIVISOR = 256
MIN_SIZE = 16
MAX_SIZE = 2048


class Piece(BaseModel):
    """A run of manifest entries to put through one brush stack, named by its content."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(description="Position of the piece in the snapshot (display only; not part of the key).")
    stack_key: str
    key: str = Field(description="Content key: hash of the stack key and the entries' sha256 list.")
    entries: list[ManifestEntry]

    @property
    def object_key(self) -> str:
        """Artifact-root key of the piece's safetensors file."""
        return f"{pieces_prefix(self.stack_key)}/{self.key}.safetensors"

    @property
    def marker_key(self) -> str:
        """Artifact-root key of the piece's JSON marker, written after the tensor file."""
        return f"{pieces_prefix(self.stack_key)}/{self.key}.json"


class PieceResult(BaseModel):
    """What one piece task produced (or found): where the piece is, its size and whether this run computed it."""

    key: str = Field(description="Artifact-root key of the safetensors file.")
    count: int
    shape: list[int] = Field(description="C x H x W of every image in the piece.")
    computed: bool
    seconds: float = 0.0


def pieces_prefix(stack_key: str) -> str:
    """Artifact-root folder of one brush stack's pieces (shared by every dataset version)."""
    return f"shards/pieces/{stack_key}"


def piece_key(stack_key: str, sha256s: Sequence[str]) -> str:
    """Content key of a piece: the stack that made it and the images in it, in order."""
    return stable_hash({"stack": stack_key, "images": list(sha256s)}, length=24)


def is_boundary(sha256: str, divisor: int) -> bool:
    """Whether a piece may end after this image: its content hash falls in a 1-in-``divisor`` class."""
    return int(sha256[-12:], 16) % divisor == 0


def plan_pieces(
    entries: Sequence[ManifestEntry],
    stack_key: str,
    *,
    divisor: int | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
) -> list[Piece]:
    """Cut entries (kept in order) into content-defined pieces of ``min_size``..``max_size`` images."""
    # the module's sizes are read per call (not bound as defaults), so a test can plan small snapshots finely
    divisor, min_size, max_size = divisor or DIVISOR, min_size or MIN_SIZE, max_size or MAX_SIZE
    if not 1 <= min_size <= max_size or divisor < 1:
        raise CanvasCraftError(
            f"piece sizes: need 1 <= min_size ({min_size}) <= max_size ({max_size}) and divisor ({divisor}) >= 1"
        )
    runs: list[list[ManifestEntry]] = []
    current: list[ManifestEntry] = []
    for entry in entries:
        current.append(entry)
        if len(current) >= max_size or (len(current) >= min_size and is_boundary(entry.sha256, divisor)):
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [
        Piece(index=i, stack_key=stack_key, key=piece_key(stack_key, [e.sha256 for e in run]), entries=run)
        for i, run in enumerate(runs)
    ]


def largest_first(pieces: Sequence[Piece]) -> list[Piece]:
    """Pieces in the order to hand them to workers: longest first, so no worker is left with a big one at the end."""
    return sorted(pieces, key=lambda piece: -len(piece.entries))  # LPT scheduling (Graham, 1969); stable


def find_piece(artifacts: ArtifactRoot, piece: Piece) -> PieceResult | None:
    """The stored piece (its marker read from the root), or None when no worker has finished it."""
    # asked of the root itself, not this machine's read-through copy: a home that served another artifact root
    # holds copies of pieces this root may lack
    if not artifacts.exists(piece.marker_key):
        return None
    marker = artifacts.get_json(piece.marker_key)
    if marker is None:
        return None
    return PieceResult(key=piece.object_key, count=int(marker["count"]), shape=list(marker["shape"]), computed=False)


def preprocess_piece(
    piece: Piece,
    stack: BrushStack,
    artifacts: ArtifactRoot,
    paths: dict[str, Path],
    *,
    seed: int,
    decode: Callable[[Path], torch.Tensor] = decode_rgb,
) -> PieceResult:
    """Apply ``stack`` to the piece's images and store the piece; return the stored one when it exists."""
    started = time.perf_counter()
    if (found := find_piece(artifacts, piece)) is not None:
        return found
    tensors = [stack(decode(paths[e.sha256]), seed=seed, key=e.sha256) for e in piece.entries]
    shapes = sorted({tuple(t.shape) for t in tensors})
    if len(shapes) != 1:
        raise mixed_shapes_error(stack, shapes)
    batch = torch.stack(tensors).contiguous()
    # tensor first, marker last: a reader that finds the marker finds the whole piece (an S3 PUT is atomic and a
    # local write is a temp file + rename)
    artifacts.put_bytes(piece.object_key, save({"images": batch}))
    artifacts.put_json(
        piece.marker_key,
        {"count": len(batch), "shape": list(batch.shape[1:]), "images": [e.sha256 for e in piece.entries]},
    )
    return PieceResult(
        key=piece.object_key,
        count=len(batch),
        shape=list(batch.shape[1:]),
        computed=True,
        seconds=round(time.perf_counter() - started, 3),
    )


def mixed_shapes_error(stack: BrushStack, shapes: Sequence[tuple[int, ...]]) -> CanvasCraftError:
    """The error for a brush stack whose outputs differ in shape (they cannot be stacked into shards)."""
    return CanvasCraftError(
        f"brush stack {stack!r} produced {len(shapes)} different image shapes ({list(shapes)[:3]}...); "
        "add a 'resize' and a 'center_crop' brush so every image has the same size"
    )
