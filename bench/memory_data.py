"""The memory section's data (``bench.memory``): real image sets of growing size, published as shard sets with the
product's own piece code (``preprocess_piece`` + ``assemble_shard_set``) from images decoded here, so no S3, ingest
or Prefect is involved."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

SIZE = 28  # Fashion-MNIST's side; the digits are upscaled to it


def datasets() -> tuple[dict[str, Any], str]:
    """uint8 N x 28 x 28 arrays: 1,797 digits, 20,000 and all of Fashion-MNIST; and a note on what was found."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    from canvascraft.datasets.seed import FASHION_MNIST_DIR, _read_idx

    digits = torch.from_numpy(load_digits().images.astype("float32") / 16.0).unsqueeze(1)
    digits = F.interpolate(digits, size=SIZE, mode="bilinear", align_corners=False).clamp(0, 1)
    found = {"digits (sklearn, upscaled)": (digits[:, 0] * 255).round().to(torch.uint8).numpy()}
    train, test = FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz", FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz"
    if not train.is_file():
        return found, f"Fashion-MNIST is not installed ({FASHION_MNIST_DIR}): only the digits were measured"
    fashion = _read_idx(train)
    note = "Fashion-MNIST: 60,000 train + 10,000 test images"
    if test.is_file():
        fashion = np.concatenate([fashion, _read_idx(test)])
    else:
        note = "Fashion-MNIST: its test file is missing, so the largest set is the 60,000 training images"
    found["Fashion-MNIST, first 20,000"] = fashion[:20_000]
    found[f"Fashion-MNIST, all {len(fashion):,}"] = fashion
    return found, note


def publish(name: str, images: Any, root: Path) -> tuple[str, int]:
    """Publish ``images`` as a shard set of the artifact root at ``root``; return its key and total file bytes."""
    import torch

    from canvascraft.artifact_root import ArtifactRoot
    from canvascraft.brushes import BrushStack
    from canvascraft.ingest.manifest import ManifestEntry, SnapshotManifest
    from canvascraft.pieces import preprocess_piece
    from canvascraft.preprocess import assemble_shard_set, plan_snapshot, stack_key

    artifacts = ArtifactRoot(str(root), root.parent / "unused-cache")
    entries, paths = [], {}
    for index, pixels in enumerate(images):
        sha = hashlib.sha256(f"{name}:{index}:".encode() + pixels.tobytes()).hexdigest()  # one entry per image
        entries.append(
            ManifestEntry(
                uri=f"bench://{name}/{index}",
                key=str(index),
                etag="",
                sha256=sha,
                size=pixels.size,
                width=SIZE,
                height=SIZE,
                mode="L",
            )
        )
        paths[sha] = Path(str(index))
    manifest = SnapshotManifest(sources=[f"bench://{name}"], entries=entries)
    stack = BrushStack.from_spec([{"name": "normalize"}])  # [0, 1] -> [-1, 1], as every training spec ends

    def decode(path: Path) -> torch.Tensor:  # the pixels of entry ``path.name``, as the image decoder would give
        return torch.from_numpy(images[int(path.name)]).float().div(255).unsqueeze(0)

    pieces = plan_snapshot(manifest, stack_key(stack, 0))
    results = [preprocess_piece(piece, stack, artifacts, paths, seed=0, decode=decode) for piece in pieces]
    shard_set = assemble_shard_set(manifest, stack, 0, pieces, results, artifacts, root.parent / "scratch")
    return shard_set.key, sum(artifacts.local(key).stat().st_size for key in shard_set.files())
