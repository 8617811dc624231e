"""Assertions shared by the trainer tests (a plain module: conftest modules are not importable by name)."""

from __future__ import annotations

from typing import Any

import torch


def assert_same_state(left: Any, right: Any, path: str = "state") -> None:
    """Nested dicts/lists of tensors and scalars are exactly equal (bitwise for tensors)."""
    if isinstance(left, torch.Tensor):
        assert isinstance(right, torch.Tensor), path
        assert left.dtype == right.dtype and left.shape == right.shape, path
        assert torch.equal(left.cpu(), right.cpu()), path
    elif isinstance(left, dict):
        assert set(left) == set(right), path
        for key in left:
            assert_same_state(left[key], right[key], f"{path}.{key}")
    elif isinstance(left, (list, tuple)):
        assert len(left) == len(right), path
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            assert_same_state(a, b, f"{path}[{index}]")
    else:
        assert left == right, f"{path}: {left!r} != {right!r}"


def window_means(losses: list[float], window: int) -> tuple[float, float]:
    """Mean loss of the first and of the last ``window`` steps."""
    return sum(losses[:window]) / window, sum(losses[-window:]) / window
