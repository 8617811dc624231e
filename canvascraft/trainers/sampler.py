"""Seeding and minibatch order: independent seeds per stream, a seeded global-RNG block and the epoch sampler.

Everything here is a pure function of (run seed, step), so a run resumed from a checkpoint draws exactly the batches,
init and dropout masks the uninterrupted run would have drawn, without checkpointing process-wide RNG state.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import torch

from canvascraft.trainers.data import TrainingDataError


def derive_seed(seed: int, *parts: object) -> int:
    """Independent 63-bit seed for one stream (``"init"``, ``"epoch", 3``, ...) of a run seed."""
    digest = hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block with torch's global RNG seeded to ``seed`` and restore the caller's RNG state afterwards.

    Used around model init and every training step, so dropout (global RNG) is reproducible and resumable
    without checkpointing process-wide state.
    """
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class MinibatchSampler:
    """Minibatch indices for micro-step ``k``: epoch ``k // batches_per_epoch`` of seeded permutations, drop-last.

    Stateless in ``k`` (each epoch's permutation comes from a ``torch.Generator`` seeded by (seed, epoch)), so a
    resumed run sees exactly the batches the uninterrupted run would have seen.
    """

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        if size < batch_size:
            raise TrainingDataError(
                f"data has {size} images but batch_size={batch_size}; give more images or lower batch_size"
            )
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.batches_per_epoch = size // batch_size
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def indices(self, micro_step: int) -> torch.Tensor:
        """Index tensor of the ``micro_step``-th minibatch (0-based, counted over the whole run)."""
        epoch, position = divmod(micro_step, self.batches_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", epoch))
            self._perm = torch.randperm(self.size, generator=generator)
            self._epoch = epoch
        return self._perm[position * self.batch_size : (position + 1) * self.batch_size]
