"""Palettes per content-defined chunk of a snapshot: the unit the features stage computes, caches and runs in parallel.

A snapshot's unique images (manifest order) are cut into chunks by ``canvascraft.pieces.plan_pieces`` (the same
content-defined chunking as preprocess), keyed by the palette-set hash and the images' sha256 list: adding an
image changes the chunk that holds it, not the others. A chunk computes rows only for its images that lack a row
in some view of the offline store (``missing``, read once by the plan), so its result is a pure function of
(chunk content, palette set, missing ids): cacheable under exactly that key.

Chunk results are frames returned to one writer (``stage.finish_palettes``) that appends one part file per view
and materializes once; chunks never touch Feast, so this module imports neither Feast nor the store and runs on
any worker (``tasks/palettes.py`` maps it over a thread pool or a Ray cluster).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field
from torchvision.transforms.v2 import functional as F

from canvascraft.decoding import decode_rgb
from canvascraft.errors import ParameterError
from canvascraft.features.schema import JOIN_KEY
from canvascraft.hashing import stable_hash
from canvascraft.ingest.manifest import ManifestEntry
from canvascraft.palettes import Palette, PaletteSet
from canvascraft.pieces import plan_pieces

# Source pixels (per channel) resized in one call: large enough to amortise the call, small enough that photos
# (256 x 256: 16 per call) stay in cache; measured faster than one call per image for digits and for photos.
RESIZE_PIXELS = 1 << 20


class PaletteChunk(BaseModel):
    """A run of a snapshot's unique images for one palette set, named by its content, with the ids it must compute."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(description="Position of the chunk in the snapshot (display only; not part of the key).")
    key: str = Field(description="Content key: hash of the palette-set namespace and the images' sha256 list.")
    entries: list[ManifestEntry]
    missing: list[str] = Field(description="Ids of this chunk lacking a row in at least one view, in chunk order.")

    def cache_key(self) -> str:
        """Task cache key: chunk content + palette set (in ``key``) + the ids still to compute."""
        return f"palette-chunk-{self.key}-{stable_hash(self.missing, length=12)}"


@dataclass(frozen=True)
class ChunkRows:
    """What one chunk computed: every palette column for its missing images (``frame``, None when none were)."""

    index: int
    key: str
    images: int
    frame: pd.DataFrame | None
    seconds: float = 0.0

    @property
    def computed(self) -> int:
        """Images this chunk computed palettes for."""
        return 0 if self.frame is None else len(self.frame)


def palette_set_for(spec: Any) -> PaletteSet:
    """The spec's palettes, each at ``features.image_size`` unless its params set its own ``image_size``."""
    return PaletteSet.from_spec(
        [
            {"name": c.name, "params": {"image_size": spec.features.image_size, **c.params}}
            for c in spec.features.palettes
        ]
    )


def chunk_namespace(palette_set: PaletteSet) -> str:
    """The palette set's part of a chunk key (``plan_pieces`` hashes it with the images)."""
    return f"palettes-{palette_set.set_hash()}"


def unique_entries(entries: Sequence[ManifestEntry]) -> list[ManifestEntry]:
    """One entry per content hash, in manifest order (two keys with the same bytes are one image)."""
    first: dict[str, ManifestEntry] = {}
    for entry in entries:
        first.setdefault(entry.sha256, entry)
    return list(first.values())


def plan_palette_chunks(
    entries: Sequence[ManifestEntry], palette_set: PaletteSet, existing: Sequence[set[str]]
) -> list[PaletteChunk]:
    """Content-defined chunks of the unique images; ``existing`` holds each view's offline ids (read once)."""
    images = unique_entries(entries)
    if not images or not len(palette_set):
        return []
    pieces = plan_pieces(images, chunk_namespace(palette_set))
    return [
        PaletteChunk(
            index=p.index,
            key=p.key,
            entries=p.entries,
            missing=[e.sha256 for e in p.entries if any(e.sha256 not in ids for ids in existing)],
        )
        for p in pieces
    ]


def check_ids(images: torch.Tensor, image_ids: Sequence[str]) -> None:
    """Image ids must be non-empty strings, one per image."""
    if len(image_ids) != len(images):
        raise ParameterError(f"features: got {len(image_ids)} image_ids for {len(images)} images; give one per image")
    bad = [i for i in image_ids if not isinstance(i, str) or not i]
    if bad:
        raise ParameterError(f"features: image_ids must be non-empty strings (sha256 hex), got {bad[:3]!r}")


def compute_palette_frame(
    images: torch.Tensor, image_ids: Sequence[str], palette_set: PaletteSet | Palette, batch_size: int = 512
) -> pd.DataFrame:
    """``image_id`` plus every palette column for a ``B x C x H x W`` batch in [0, 1], one row per image."""
    check_ids(images, image_ids)
    palette_set = palette_set if isinstance(palette_set, PaletteSet) else PaletteSet((palette_set,))
    columns = palette_set.compute(images, batch_size=batch_size)
    frame = pd.DataFrame({name: values.numpy() for name, values in columns.items()})
    frame.insert(0, JOIN_KEY, pd.array(list(image_ids), dtype="string"))
    return frame


def load_palette_images(
    paths: list[Path], size: int, decode: Callable[[Path], torch.Tensor] = decode_rgb
) -> torch.Tensor:
    """Raw images as one float RGB batch in [0, 1], resized (antialiased bilinear) to ``size`` x ``size``.

    Decoded by ``canvascraft.decoding.decode_rgb`` (torchvision.io where it gives Pillow's pixels: C++, without the
    GIL, so chunks on a thread pool decode in parallel), the one image loader of the stages. Consecutive images of
    one shape are resized together, up to ``RESIZE_PIXELS`` source pixels per call: bit-identical to one call per
    image, ~3x faster for 8 x 8 digits (the per-call Python cost is most of their work, and is held under the GIL),
    while only one group of decoded images is alive at a time (decoding a whole chunk of photos first held ~0.2 GB
    and two threads spent their second core on page faults).
    """
    out = torch.empty(len(paths), 3, size, size)
    pending: list[tuple[int, torch.Tensor]] = []

    def flush() -> None:
        batch = torch.stack([image for _, image in pending])
        out[[index for index, _ in pending]] = F.resize(batch, [size, size], antialias=True).clamp(0, 1)
        pending.clear()

    for index, path in enumerate(paths):
        image = decode(path)
        if pending and (
            image.shape != pending[0][1].shape or len(pending) * image.shape[-1] * image.shape[-2] >= RESIZE_PIXELS
        ):
            flush()
        pending.append((index, image))
    if pending:
        flush()
    return out


def compute_chunk_rows(chunk: PaletteChunk, palette_set: PaletteSet, paths: Mapping[str, Path]) -> ChunkRows:
    """Every palette column for the chunk's missing images, loading them once per palette resolution."""
    started = time.perf_counter()
    if not chunk.missing:
        return ChunkRows(index=chunk.index, key=chunk.key, images=len(chunk.entries), frame=None)
    frame: pd.DataFrame | None = None
    for size in sorted({p.image_size for p in palette_set}):
        group = PaletteSet([p for p in palette_set if p.image_size == size])
        part = compute_palette_frame(load_palette_images([paths[i] for i in chunk.missing], size), chunk.missing, group)
        frame = part if frame is None else frame.merge(part, on=JOIN_KEY, how="inner", validate="one_to_one")
    return ChunkRows(
        index=chunk.index,
        key=chunk.key,
        images=len(chunk.entries),
        frame=frame,
        seconds=round(time.perf_counter() - started, 3),
    )


def compute_chunks(
    chunks: Sequence[PaletteChunk], palette_set: PaletteSet, paths: Mapping[str, Path], *, max_workers: int = 1
) -> list[ChunkRows]:
    """``compute_chunk_rows`` of every chunk on ``max_workers`` threads (most work first), in chunk order."""
    if max_workers <= 1:
        return [compute_chunk_rows(c, palette_set, paths) for c in chunks]
    order = sorted(range(len(chunks)), key=lambda i: -len(chunks[i].missing))  # LPT scheduling (Graham, 1969)
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="palettes") as pool:
        done = dict(
            zip(order, pool.map(lambda i: compute_chunk_rows(chunks[i], palette_set, paths), order), strict=True)
        )
    return [done[i] for i in range(len(chunks))]
