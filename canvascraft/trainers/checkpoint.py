"""Checkpoint codec: tensor-aware state files (structure in JSON, tensors in safetensors, no pickle) and the
``canvascraft_trainer.json`` manifest whose presence marks a complete checkpoint.

The trainer contract (what a checkpoint holds and when it is written) lives in ``canvascraft.trainers.base``; this
module only knows how the files are laid out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from canvascraft.errors import CanvasCraftError

MANIFEST_NAME = "canvascraft_trainer.json"
STATE_NAME = "training_state"  # training_state.safetensors (tensors) + training_state.json (structure)
CHECKPOINT_FORMAT_VERSION = 1


class CheckpointError(CanvasCraftError):
    """A checkpoint folder is missing, incomplete or written by another trainer."""


def save_state(directory: Path, name: str, state: Any) -> None:
    """Write nested state (dicts with int/str keys, lists, tuples, tensors, scalars) as name.json + name.safetensors."""
    tensors: dict[str, torch.Tensor] = {}

    def encode(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            key = f"t{len(tensors)}"
            tensors[key] = obj.detach().to("cpu").contiguous()
            return {"__tensor__": key}
        if isinstance(obj, Mapping):
            return {"__dict__": [[encode(k), encode(v)] for k, v in obj.items()]}
        if isinstance(obj, tuple):
            return {"__tuple__": [encode(v) for v in obj]}
        if isinstance(obj, list):
            return [encode(v) for v in obj]
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint state file")

    structure = encode(state)
    save_file(tensors, str(directory / f"{name}.safetensors"))
    (directory / f"{name}.json").write_text(json.dumps(structure))


def load_state(directory: Path, name: str) -> Any:
    """Read a state written by ``save_state`` (tensors land on CPU)."""
    tensors = load_file(str(directory / f"{name}.safetensors"), device="cpu")

    def decode(obj: Any) -> Any:
        if isinstance(obj, dict):
            if "__tensor__" in obj:
                return tensors[obj["__tensor__"]]
            if "__tuple__" in obj:
                return tuple(decode(v) for v in obj["__tuple__"])
            return {decode(k): decode(v) for k, v in obj["__dict__"]}
        if isinstance(obj, list):
            return [decode(v) for v in obj]
        return obj

    return decode(json.loads((directory / f"{name}.json").read_text()))


def write_manifest(directory: Path, trainer: str, step: int, config: dict[str, Any]) -> None:
    """Write ``canvascraft_trainer.json`` (call it last: its presence marks the checkpoint complete)."""
    manifest = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "trainer": trainer,
        "step": step,
        "config": config,
        "versions": _versions(),
    }
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The checkpoint's ``canvascraft_trainer.json`` (trainer name, step, resolved config, versions)."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(directory)!r} has no {MANIFEST_NAME} (missing or incomplete)")
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(directory)!r}: format_version {manifest.get('format_version')!r} is not supported; "
            f"allowed values: {CHECKPOINT_FORMAT_VERSION}"
        )
    return manifest


def _versions() -> dict[str, str]:
    """Library versions recorded in every checkpoint manifest."""
    import diffusers
    import safetensors

    import canvascraft

    return {
        "canvascraft": canvascraft.__version__,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "safetensors": safetensors.__version__,
    }
