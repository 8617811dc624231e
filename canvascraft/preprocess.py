"""Preprocess: apply the brush stack to every image of a snapshot and write tensor shards.

Shards are keyed by (dataset version, brush-stack hash, seed) in the artifact root; an unchanged rerun on any
worker finds them and does no work.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from pydantic import BaseModel, Field
from safetensors.torch import load_file, save_file
from torchvision.transforms.v2 import functional as F

from canvascraft.artifact_root import ArtifactRoot
from canvascraft.brushes import BrushStack
from canvascraft.errors import CanvasCraftError
from canvascraft.hashing import stable_hash
from canvascraft.ingest.cache import ObjectCache
from canvascraft.ingest.manifest import SnapshotManifest

SHARD_SIZE = 4096
_INDEX = "index.json"  # the ShardSet of a published folder (the artifact root's marker says it is complete)


class ShardSet(BaseModel):
    """A preprocessed dataset: its key in the artifact root (any worker reads it) and this machine's copy."""

    key: str = Field(description="Artifact-root key: shards/<dataset version>/<stack key>.")
    path: str = Field(description="Local read-through copy on the machine that produced this object.")
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

    def files(self) -> list[str]:
        """Artifact-root keys of the shard files, in image order (``ArtifactRoot.fetch`` gives a local path)."""
        return [f"{self.key}/{name}" for name in self.shards]


def shard_set_key(dataset_version: str, key: str) -> str:
    """Artifact-root key of a shard set: content-addressed by dataset version and brush-stack key."""
    return f"shards/{dataset_version}/{key}"


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
    artifacts: ArtifactRoot,
    *,
    seed: int,
    on_progress: Callable[[int], None] | None = None,
) -> ShardSet:
    """Apply ``stack`` to every manifest image and publish the shards; reuse a shard set the root already has."""
    started = time.perf_counter()
    key = stack_key(stack, seed)
    folder_key = shard_set_key(manifest.dataset_version, key)
    if (found := find_shard_set(artifacts, folder_key)) is not None:
        return found.model_copy(update={"reused": True, "seconds": round(time.perf_counter() - started, 3)})
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
    with tempfile.TemporaryDirectory(dir=_scratch(cache_root)) as tmp:
        tmp_dir = Path(tmp)
        shard_names = []
        for number, start in enumerate(range(0, len(batch), SHARD_SIZE)):
            name = f"shard-{number:05d}.safetensors"
            save_file({"images": batch[start:start + SHARD_SIZE].clone()}, str(tmp_dir / name))
            shard_names.append(name)
        shard_set = ShardSet(
            key=folder_key,
            path=str(artifacts.local(folder_key)),
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
        (tmp_dir / _INDEX).write_text(shard_set.model_dump_json())
        # every shard first, the completion marker last: a reader on any worker sees all of it or nothing. Two
        # runs publishing the same key write the same bytes (content-addressed), so neither can corrupt the other.
        artifacts.put_folder(folder_key, tmp_dir)
    return shard_set.model_copy(update={"seconds": round(time.perf_counter() - started, 3)})


def _scratch(cache_root: Path) -> Path:
    """A scratch folder on the cache's filesystem for building a shard set before it is published."""
    folder = cache_root / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def find_shard_set(artifacts: ArtifactRoot, folder_key: str) -> ShardSet | None:
    """The published shard set under ``folder_key`` (a local copy fetched where missing), or None."""
    local = artifacts.folder(folder_key)
    if local is None:
        return None
    shard_set = ShardSet.model_validate_json((local / _INDEX).read_text())
    return shard_set.model_copy(update={"path": str(local)})


def load_shards(shard_set: ShardSet, artifacts: ArtifactRoot | None = None) -> torch.Tensor:
    """All preprocessed images of a shard set as one N x C x H x W float tensor (fetched from the root if needed)."""
    root = Path(shard_set.path)
    if artifacts is not None:
        local = artifacts.folder(shard_set.key)
        if local is None:
            raise CanvasCraftError(f"shard set {shard_set.key} is not in the artifact root {artifacts.url}; "
                                   "rerun the train flow's preprocess stage")
        root = local
    return torch.cat([load_file(str(root / name))["images"] for name in shard_set.shards])
