"""Data-parallel training of a trainer across processes: PyTorch DistributedDataParallel (Li et al. 2020, "PyTorch
Distributed: Experiences on Accelerating Data Parallel Training").

Pure ``torch.distributed``: whoever starts the processes initialises the process group (Ray Train's ``TorchTrainer``
in a multi-worker trial, gloo on CPU and NCCL on CUDA; ``torch.multiprocessing`` in tests). Every rank runs the
ordinary ``Trainer.train`` loop of the same trainer class; this module only subclasses it:

- data: the seeded sampler draws the same *global* minibatch (``batch_size`` images) on every rank and rank ``r``
  trains on slice ``r`` of it (``batch_size / world_size`` images);
- gradients: the trainable modules run their forward pass through ``DistributedDataParallel`` during the step, so
  backward all-reduces (averages) the gradients. The mean of the ranks' slice-mean gradients is the full-batch mean
  gradient of the same images, so clipping, the optimizer, the LR schedule and the EMA see identical gradients on
  every rank and the replicas stay identical;
- noise (DDPM's eps and t): each rank draws from its own stream seeded by (seed, rank, step), so N workers x b/N
  equal one worker x b in expectation (same images, independent noise), not bitwise; the per-step streams need no
  checkpointed state, so a resumed run continues exactly;
- metrics: averaged over ranks every step, so each rank reports the global loss;
- checkpoints: rank 0 writes the trainer's ordinary checkpoint (``load_trainer``, sampling and publishing read it
  unchanged); on resume every rank loads the same checkpoint.

Outside the step the trainer keeps its plain modules, so EMA, ``sample`` and ``save_checkpoint`` are untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from canvascraft.errors import CanvasCraftError
from canvascraft.trainers.base import TRAINERS, TrainConfig, Trainer
from canvascraft.trainers.sampler import derive_seed

# Trainers that train data-parallel, with the attributes holding their trainable modules.
DDP_MODULES: dict[str, tuple[str, ...]] = {"ddpm": ("unet",)}
# Trainers refused on purpose, with the reason shown in spec errors.
REFUSED: dict[str, str] = {
    "dcgan": (
        "its step alternates two optimizers and runs D several times per backward (real, fake, then G's loss), "
        "and its BatchNorm statistics are per rank; DDP would need SyncBatchNorm and per-phase sync"
    ),
}


class DistributedError(CanvasCraftError):
    """A trainer cannot train data-parallel as configured (unsupported trainer, batch split, no process group)."""


def supported_trainers() -> list[str]:
    """Trainer names that ``tuner.workers_per_trial > 1`` accepts."""
    return sorted(DDP_MODULES)


def check_workers(trainer: str, workers: int, params: dict[str, Any], batch_choices: list[Any] | None) -> list[str]:
    """Spec problems of training ``trainer`` on ``workers`` ranks (empty when fine or ``workers == 1``).

    ``batch_choices``: the search space's ``batch_size`` values when it searches over them (a list; a range is
    refused because its draws need not divide evenly), None when ``batch_size`` is fixed.
    """
    if workers <= 1:
        return []
    where = f"tuner.workers_per_trial={workers}"
    if trainer not in DDP_MODULES:
        reason = f" ({REFUSED[trainer]})" if trainer in REFUSED else ""
        allowed = ", ".join(supported_trainers())
        problem = (
            f"{where}: trainer {trainer!r} cannot train data-parallel{reason}; allowed trainers with "
            f"workers_per_trial > 1: {allowed} (or set workers_per_trial: 1)"
        )
        return [problem]
    field = TRAINERS.get(trainer).config_cls.model_fields["batch_size"]
    sizes = batch_choices if batch_choices is not None else [params.get("batch_size", field.default)]
    bad = [size for size in sizes if not isinstance(size, int) or size % workers]
    if bad:
        got = ", ".join(map(repr, bad))
        problem = (
            f"{where}: trainer.params.batch_size (the global batch, split evenly over the workers) must be a "
            f"multiple of {workers}; got {got}"
        )
        return [problem]
    return []


def distributed_class(cls: type[Trainer[Any]], modules: tuple[str, ...] | None = None) -> type[Trainer[Any]]:
    """``cls`` made data-parallel: DDP on ``modules`` (default: ``DDP_MODULES[cls.name]``), rank slices, rank-0 I/O."""
    if modules is None:
        if cls.name not in DDP_MODULES:
            reason = f": {REFUSED[cls.name]}" if cls.name in REFUSED else ""
            raise DistributedError(
                f"trainer {cls.name!r} cannot train data-parallel{reason}; allowed values: "
                f"{', '.join(supported_trainers())}"
            )
        modules = DDP_MODULES[cls.name]
    return type(
        f"Distributed{cls.__name__}", (DataParallelMixin, cls), {"ddp_modules": modules, "__module__": __name__}
    )


class DataParallelMixin(Trainer[TrainConfig]):
    """Put before a concrete trainer class (see ``distributed_class``); needs an initialised process group."""

    ddp_modules: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not dist.is_available() or not dist.is_initialized():
            raise DistributedError(
                f"trainer {self.name!r}: data-parallel training needs an initialised torch.distributed process group "
                "(Ray Train's TorchTrainer sets one up; or call torch.distributed.init_process_group)"
            )
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self._replicas: dict[str, DistributedDataParallel] | None = None
        super().__init__(*args, **kwargs)

    def _build(self, config: TrainConfig) -> None:
        """The trainer's modules, after checking that the global batch splits evenly over the ranks."""
        if config.batch_size % self.world_size:
            raise DistributedError(
                f"trainer {self.name!r}: batch_size={config.batch_size} must be a multiple of the {self.world_size} "
                f"workers (each trains on batch_size / workers images); allowed values: multiples of {self.world_size}"
            )
        super()._build(config)  # type: ignore[safe-super]  # the concrete trainer next in the MRO
        self._replicas = None  # new modules: wrapped again at the next step (DDP broadcasts rank 0's state then)

    def _batch(self, data: Any, indices: torch.Tensor) -> torch.Tensor:
        """This rank's slice of the global minibatch ``indices`` (``data``: what ``Trainer._batch`` reads)."""
        share = len(indices) // self.world_size
        return super()._batch(data, indices[self.rank * share : (self.rank + 1) * share])

    def _train_step(self, batches: list[torch.Tensor]) -> dict[str, float]:
        """The trainer's step on this rank's slices, forward through DDP, with this rank's noise; global metrics.

        With gradient accumulation every micro-batch's backward all-reduces (the step is the trainer's own code, so
        DDP's ``no_sync`` cannot wrap all but the last); the average is still exact, the sync merely repeated.
        """
        config = self._require_config()
        self.rng.manual_seed(derive_seed(config.seed, "noise", "rank", self.rank, "step", self.step))
        with self._through_ddp():
            metrics = super()._train_step(batches)  # type: ignore[safe-super]  # the concrete trainer
        return self._mean_over_ranks(metrics)

    @contextlib.contextmanager
    def _through_ddp(self) -> Iterator[None]:
        """During the step the module attributes are their DDP wrappers (same parameters), then the plain modules."""
        if self._replicas is None:
            device_ids = None
            if self.device.type == "cuda":
                device_ids = [self.device.index if self.device.index is not None else torch.cuda.current_device()]
            # no buffer sync per forward: the supported modules keep no buffers that training updates (GroupNorm);
            # construction still broadcasts rank 0's parameters and buffers
            self._replicas = {
                name: DistributedDataParallel(getattr(self, name), device_ids=device_ids, forward_sync_buffers=False)
                for name in self.ddp_modules
            }
        plain = {name: getattr(self, name) for name in self.ddp_modules}
        try:
            for name, replica in self._replicas.items():
                setattr(self, name, replica)
            yield
        finally:
            for name, module in plain.items():
                setattr(self, name, module)

    def _mean_over_ranks(self, metrics: dict[str, float]) -> dict[str, float]:
        """Every metric averaged over the ranks (one all-reduce of a small vector per step)."""
        keys = sorted(metrics)
        device = self.device if dist.get_backend() == "nccl" else torch.device("cpu")  # gloo reduces CPU tensors
        values = torch.tensor([float(metrics[key]) for key in keys], dtype=torch.float64, device=device)
        dist.all_reduce(values)
        return {key: float(value) / self.world_size for key, value in zip(keys, values.tolist(), strict=True)}

    def save_checkpoint(self, directory: str | Path) -> Path:
        """Rank 0 writes the checkpoint (every replica holds the same state); it is complete when any rank returns."""
        written = super().save_checkpoint(directory) if self.rank == 0 else Path(directory)
        dist.barrier()  # no rank may read (resume) or hand on a checkpoint rank 0 is still writing
        return written
