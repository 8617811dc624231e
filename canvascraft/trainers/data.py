"""Training data as trainers see it: a length, a shape and ``take(indices)``; a tensor or rows streamed from shards.

The trainer only ever gathers minibatches by index (``MinibatchSampler`` decides which), so any source that can
gather rows in the requested order trains bit-identically to the same rows held in one tensor. A tensor (tests,
small data) is wrapped by ``TensorData``; ``canvascraft.shard_reader.ShardReader`` reads rows from the shard
files of a shard set, so a trial's memory does not grow with the dataset.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch

from canvascraft.errors import CanvasCraftError

if TYPE_CHECKING:  # base imports this module at runtime
    from canvascraft.trainers.base import TrainConfig


class TrainingDataError(CanvasCraftError):
    """The training tensor does not match the trainer's params (shape, dtype, range or size)."""


@runtime_checkable
class TrainingData(Protocol):
    """N images of one shape that can be gathered by index (rows come back in the requested order)."""

    def __len__(self) -> int: ...

    @property
    def shape(self) -> tuple[int, ...]:
        """N x C x H x W."""
        ...

    def take(self, indices: torch.Tensor) -> torch.Tensor:
        """The rows at ``indices`` (a 1-D LongTensor), in that order, as one tensor."""
        ...


class TensorData:
    """A tensor already in memory, gathered with plain indexing (exactly what the trainers did before streaming)."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor

    def __len__(self) -> int:
        return len(self.tensor)

    @property
    def shape(self) -> tuple[int, ...]:
        """The tensor's shape."""
        return tuple(self.tensor.shape)

    def take(self, indices: torch.Tensor) -> torch.Tensor:
        """``tensor[indices]`` (indices moved to the tensor's device)."""
        return self.tensor[indices.to(self.tensor.device)]


def check_data(data: Any, config: TrainConfig) -> TrainingData:
    """Validate training data: float N x channels x sample_size x sample_size with values in [-1, 1].

    A tensor is checked whole; streamed data (a ``TrainingData`` such as ``ShardReader``) is checked by shape here
    and by dtype and range batch by batch as it is read (``check_values`` in ``Trainer._batch``), so no pass over
    the whole dataset is needed.
    """
    if isinstance(data, torch.Tensor):
        data = TensorData(data)
    elif not isinstance(data, TrainingData):
        raise TrainingDataError(
            f"data: expected a torch.Tensor N x C x H x W or TrainingData (a ShardReader), got {type(data).__name__}"
        )
    expected = (config.channels, config.sample_size, config.sample_size)
    if len(data.shape) != 4 or tuple(data.shape[1:]) != expected:
        raise TrainingDataError(
            f"data: expected shape N x {' x '.join(map(str, expected))} (trainer params channels={config.channels}, "
            f"sample_size={config.sample_size}), got {tuple(data.shape)}"
        )
    if isinstance(data, TensorData):
        check_values(data.tensor, "data")
    return data


def check_values(images: torch.Tensor, what: str) -> None:
    """``images`` are a floating-point tensor with values in [-1, 1] (the normalize brush's output)."""
    if not isinstance(images, torch.Tensor):
        raise TrainingDataError(f"{what}: expected a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise TrainingDataError(f"{what}: expected a floating-point tensor in [-1, 1], got dtype {images.dtype}")
    if images.numel() == 0:
        return
    low, high = (float(v) for v in torch.aminmax(images))
    if not (math.isfinite(low) and math.isfinite(high)) or low < -1.0 - 1e-3 or high > 1.0 + 1e-3:
        raise TrainingDataError(
            f"{what}: values must lie in [-1, 1] (the normalize brush's output); got min {low:.4g}, max {high:.4g}"
        )
