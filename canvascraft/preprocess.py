"""Preprocess: apply the brush stack to every image of a snapshot and write tensor shards.

Shards are keyed by (dataset version, brush-stack hash, seed); an unchanged rerun finds them and does no work.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from pydantic import BaseModel
from safetensors.torch import load_file, save_file
from torchvision.transforms.v2 import functional as F

from canvascraft.brushes import BrushStack
from canvascraft.errors import CanvasCraftError
from canvascraft.hashing import stable_hash
from canvascraft.ingest.cache import ObjectCache
from canvascraft.ingest.manifest import SnapshotManifest

SHARD_SIZE = 4096
_DONE = "index.json"  # written last: its presence means the shard set is complete


class ShardSet(BaseModel):
    """A preprocessed dataset on disk."""

    path: str
    dataset_version: str
    stack_key: str
    count: int
    shape: list[int]
    shards: list[str]
    image_ids: list[str]
    labels: list[str | None]
    brushes: list[dict[str, Any]]
    seed: int
    reused: bool = False
    seconds: float = 0.0


def stack_key(stack: BrushStack, seed: int) -> str:
    """Cache key of a brush stack's output: its resolved config, plus the seed when a brush is random."""
    random = any(b.random for b in stack.brushes)
    return stable_hash({"brushes": stack.config(), "seed": seed if random else None})


def load_image(path: Path) -> torch.Tensor:
    """Decode an image file to a float32 RGB CHW tensor in [0, 1]."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")  # palette, LA and RGBA are flattened explicitly to RGB
    return F.to_dtype(F.to_image(rgb), torch.float32, scale=True)


def preprocess(
    manifest: SnapshotManifest,
    cache_root: Path,
    stack: BrushStack,
    out_root: Path,
    *,
    seed: int,
    on_progress: Callable[[int], None] | None = None,
) -> ShardSet:
    """Apply ``stack`` to every manifest image; reuse the shard set when the key already exists."""
    started = time.perf_counter()
    key = stack_key(stack, seed)
    out_dir = out_root / manifest.dataset_version / key
    if (out_dir / _DONE).is_file():
        shard_set = ShardSet.model_validate_json((out_dir / _DONE).read_text())
        return shard_set.model_copy(update={"reused": True, "seconds": round(time.perf_counter() - started, 3)})
    if not manifest.entries:
        raise CanvasCraftError(f"snapshot {manifest.dataset_version} has no valid images to preprocess")
    cache = ObjectCache(cache_root)
    tensors: list[torch.Tensor] = []
    for entry in manifest.entries:
        tensors.append(stack(load_image(cache.object_path(entry.sha256)), seed=seed, key=entry.sha256))
        if on_progress:
            on_progress(1)
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise CanvasCraftError(
            f"brush stack {stack!r} produced {len(shapes)} different image shapes ({sorted(shapes)[:3]}...); "
            "add a 'resize' and a 'center_crop' brush so every image has the same size"
        )
    batch = torch.stack(tensors).contiguous()
    tmp_dir = out_dir.with_name(f".{key}.{os.getpid()}")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    shard_names = []
    for number, start in enumerate(range(0, len(batch), SHARD_SIZE)):
        name = f"shard-{number:05d}.safetensors"
        save_file({"images": batch[start:start + SHARD_SIZE].clone()}, str(tmp_dir / name))
        shard_names.append(name)
    shard_set = ShardSet(
        path=str(out_dir),
        dataset_version=manifest.dataset_version,
        stack_key=key,
        count=len(batch),
        shape=list(batch.shape[1:]),
        shards=shard_names,
        image_ids=[e.sha256 for e in manifest.entries],
        labels=[e.label for e in manifest.entries],
        brushes=stack.config(),
        seed=seed,
    )
    (tmp_dir / _DONE).write_text(shard_set.model_dump_json())
    if out_dir.exists():  # another run finished first: keep its (identical) result
        shutil.rmtree(tmp_dir)
    else:
        os.replace(tmp_dir, out_dir)
    return shard_set.model_copy(update={"seconds": round(time.perf_counter() - started, 3)})


def load_shards(shard_set: ShardSet | str | Path) -> torch.Tensor:
    """All preprocessed images of a shard set as one N x C x H x W float tensor."""
    if not isinstance(shard_set, ShardSet):
        shard_set = ShardSet.model_validate(json.loads((Path(shard_set) / _DONE).read_text()))
    root = Path(shard_set.path)
    return torch.cat([load_file(str(root / name))["images"] for name in shard_set.shards])
