"""Training data as trainers see it: a length, a shape and ``take(indices)``; a tensor or rows streamed from shards.

The trainer only ever gathers minibatches by index (``MinibatchSampler`` decides which), so any source that can
gather rows in the requested order trains bit-identically to the same rows held in one tensor. A tensor (tests,
small data) is wrapped by ``TensorData``; ``canvascraft.shard_reader.ShardReader`` reads rows from the shard
files of a shard set, so a trial's memory does not grow with the dataset.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


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
