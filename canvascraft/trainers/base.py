"""Trainer contract (Template Method), the trainer registry and the reporter protocol.

A trainer is pure torch: no Prefect, no Ray. The Ray Tune trainable wraps ``Trainer.train`` and passes a
``Reporter`` that forwards to ``ray.tune.report``; orchestration never reaches inside the training loop.

Checkpoint contract (every trainer): ``save_checkpoint(dir)`` writes weights (safetensors), optimizer and LR
scheduler state, EMA (where kept), the RNG state and the step counter, then ``canvascraft_trainer.json`` last
(its presence marks a complete checkpoint). ``load_checkpoint(dir)`` rebuilds the trainer from that JSON and
restores all of it, so training resumed from a checkpoint continues exactly as uninterrupted training would.
The file layout lives in ``canvascraft.trainers.checkpoint``; seeding and minibatch order in
``canvascraft.trainers.sampler``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast, runtime_checkable

import torch
from pydantic import BaseModel, ConfigDict, Field

from canvascraft.device import DeviceName, memory_format, resolve_device
from canvascraft.errors import ParameterError
from canvascraft.registry import Registry, validate_params
from canvascraft.trainers.checkpoint import (
    MANIFEST_NAME,
    STATE_NAME,
    CheckpointError,
    load_state,
    read_manifest,
    save_state,
    write_manifest,
)
from canvascraft.trainers.data import TensorData, TrainingData, check_data, check_values
from canvascraft.trainers.sampler import MinibatchSampler, derive_seed, seeded_global_rng

TRAINER_ENTRY_POINT_GROUP = "canvascraft.trainers"


class TrainConfig(BaseModel):
    """Hyper-parameters every trainer shares; each trainer's subclass adds its own (frozen, JSON-serialisable)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Fields that may differ between a checkpoint's config and the config a resumed run is given.
    RESUMABLE_FIELDS: ClassVar[frozenset[str]] = frozenset({"steps", "log_every", "checkpoint_every"})

    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="Seeds init, minibatch order and noise.")
    steps: int = Field(
        default=1000, ge=1, le=10_000_000, description="Total optimizer steps; a resumed run continues to it."
    )
    batch_size: int = Field(default=64, ge=1, le=8192, description="Images per minibatch (per micro-batch).")
    sample_size: int = Field(default=32, ge=8, le=512, description="Image height = width, in pixels.")
    channels: int = Field(default=3, ge=1, le=4, description="Image channels (1 grayscale, 3 RGB).")
    mixed_precision: bool = Field(default=True, description="bf16/fp16 autocast on CUDA; ignored on CPU.")
    log_every: int = Field(default=10, ge=1, le=1_000_000, description="Report metrics every N steps.")
    checkpoint_every: int = Field(
        default=0, ge=0, le=10_000_000, description="Checkpoint and report it every N steps (0: only at the end)."
    )


@dataclass(frozen=True)
class TrainResult:
    """What one ``train`` call did: last-window loss, global step, throughput and the per-step loss curve."""

    final_loss: float  # mean loss over the last ``log_every`` steps of this call (nan when no step ran)
    steps: int  # global step counter after the call (includes steps restored from a checkpoint)
    images_per_sec: float  # training images per second of step time in this call (excludes checkpoint I/O)
    step_time: float  # mean seconds per optimizer step in this call
    steps_run: int = 0  # optimizer steps taken by this call
    losses: list[float] = field(default_factory=list)  # per-step loss of this call, in order
    metrics: dict[str, float] = field(default_factory=dict)  # the last metrics dict handed to the reporter
    checkpoint_dir: Path | None = None  # last kept checkpoint (only when ``checkpoint_root`` was given)


@runtime_checkable
class Reporter(Protocol):
    """Receives metrics every ``log_every`` steps; ``checkpoint_dir`` is set when a checkpoint was just written.

    The folder is only valid during the call (the trainer deletes temporary checkpoints when it returns), which
    matches ``ray.tune.report(metrics, checkpoint=Checkpoint.from_directory(dir))``: Ray persists it synchronously.
    """

    def __call__(self, metrics: dict[str, float], checkpoint_dir: Path | None) -> None: ...


ConfigT = TypeVar("ConfigT", bound=TrainConfig)


class Trainer(ABC, Generic[ConfigT]):
    """A generative-model trainer: ``train`` (template method), ``sample`` and the checkpoint contract.

    Generic in its config model, so ``class DDPMTrainer(Trainer[DDPMConfig])`` sees ``self.config`` and the hooks'
    ``config`` as ``DDPMConfig`` without re-checking the type.
    """

    name: ClassVar[str] = ""
    # The config model each concrete trainer sets (a ClassVar cannot hold a type variable, hence a plain class
    # attribute); the shared TrainConfig serves trainers without parameters of their own.
    config_cls: type[ConfigT] = cast("type[ConfigT]", TrainConfig)

    def __init__(
        self, config: ConfigT | Mapping[str, Any] | None = None, *, device: DeviceName | torch.device = "auto"
    ) -> None:
        self.device = resolve_device(device)
        self.memory_format = memory_format(self.device)
        self.config: ConfigT | None = None
        self.step = 0
        self.rng = torch.Generator()  # CPU stream for noise / latents; its state is checkpointed
        if config is not None:
            self.setup(self.validate_config(config))

    # --- configuration ------------------------------------------------------------------------------------

    @classmethod
    def validate_config(cls, params: TrainConfig | Mapping[str, Any]) -> ConfigT:
        """Validate params with the trainer's config model; errors name each field and what it got."""
        if isinstance(params, cls.config_cls):
            return params
        if isinstance(params, BaseModel):
            params = params.model_dump()
        return validate_params(cls.config_cls, dict(params), "trainer", cls.name)

    def setup(self, config: ConfigT) -> None:
        """Build model, optimizer and schedules for ``config`` from scratch (step 0, seeded init)."""
        self.config = config
        self.step = 0
        self.rng = torch.Generator().manual_seed(derive_seed(config.seed, "noise"))
        with seeded_global_rng(derive_seed(config.seed, "init"), self.device):
            self._build(config)

    def _reconcile(self, config: ConfigT | Mapping[str, Any] | None) -> ConfigT:
        """Use ``config`` (building on first use); when resuming only ``RESUMABLE_FIELDS`` may differ."""
        if config is None:
            if self.config is None:
                raise ParameterError(
                    f"trainer {self.name!r} has no config: pass one to train() or the constructor, or load a checkpoint"
                )
            return self.config
        resolved = self.validate_config(config)
        if self.config is None:
            self.setup(resolved)
            return resolved
        if resolved == self.config:
            return resolved
        old, new = self.config.model_dump(), resolved.model_dump()
        changed = sorted(k for k in new if new[k] != old[k])
        fixed = [k for k in changed if k not in resolved.RESUMABLE_FIELDS]
        if fixed:
            changes = ", ".join(f"{k} ({old[k]!r} -> {new[k]!r})" for k in fixed)
            raise ParameterError(
                f"trainer {self.name!r}: params {changes} differ from the loaded config; "
                f"only {', '.join(sorted(resolved.RESUMABLE_FIELDS))} may change when resuming"
            )
        previous = self.config
        self.config = resolved
        self._config_updated(previous, resolved)
        return resolved

    # --- training loop ------------------------------------------------------------------------------------

    def micro_batches_per_step(self) -> int:
        """Minibatches consumed by one optimizer step (gradient accumulation)."""
        return 1

    def train(
        self,
        config: ConfigT | Mapping[str, Any] | None,
        data: torch.Tensor | TrainingData,
        reporter: Reporter | None = None,
        *,
        checkpoint_root: str | Path | None = None,
    ) -> TrainResult:
        """Train from the current step up to ``config.steps``; report every ``log_every`` steps and checkpoint.

        Checkpoints are written every ``checkpoint_every`` steps and at the end when a reporter or a
        ``checkpoint_root`` is given: under ``checkpoint_root/step_XXXXXXXX`` (kept) or a temporary folder that is
        deleted once the reporter returns.
        """
        config = self._reconcile(config)
        data = check_data(data, config)
        sampler = MinibatchSampler(len(data), config.batch_size, config.seed)
        micro = self.micro_batches_per_step()
        images_per_step = config.batch_size * micro
        write_checkpoints = reporter is not None or checkpoint_root is not None
        losses: list[float] = []
        window: list[dict[str, float]] = []
        window_time, total_time, start_step = 0.0, 0.0, self.step
        metrics: dict[str, float] = {}
        kept: Path | None = None

        while self.step < config.steps:
            started = time.perf_counter()
            batches = [self._batch(data, sampler.indices(self.step * micro + i)) for i in range(micro)]
            with seeded_global_rng(derive_seed(config.seed, "step", self.step), self.device):
                step_metrics = self._train_step(batches)
            self.step += 1
            elapsed = time.perf_counter() - started
            window_time += elapsed
            total_time += elapsed
            losses.append(step_metrics["loss"])
            window.append(step_metrics)

            final = self.step == config.steps
            checkpoint_due = write_checkpoints and (
                final or (config.checkpoint_every > 0 and self.step % config.checkpoint_every == 0)
            )
            if not (final or checkpoint_due or self.step % config.log_every == 0):
                continue
            metrics = {key: sum(m[key] for m in window) / len(window) for key in window[0]}
            metrics.update(
                step=self.step,
                images_per_sec=images_per_step * len(window) / window_time,
                step_time=window_time / len(window),
                **self._extra_metrics(),
            )
            window, window_time = [], 0.0
            checkpoint_dir = None
            if checkpoint_due:
                if checkpoint_root is not None:
                    checkpoint_dir = kept = self.save_checkpoint(Path(checkpoint_root) / f"step_{self.step:08d}")
                else:
                    checkpoint_dir = self.save_checkpoint(
                        Path(tempfile.mkdtemp(prefix=f"canvascraft-{self.name}-step{self.step}-"))
                    )
            try:
                if reporter is not None:
                    reporter(dict(metrics), checkpoint_dir)
            finally:
                if checkpoint_dir is not None and checkpoint_root is None:
                    shutil.rmtree(checkpoint_dir, ignore_errors=True)

        ran = self.step - start_step
        tail = losses[-config.log_every :]
        return TrainResult(
            final_loss=sum(tail) / len(tail) if tail else float("nan"),
            steps=self.step,
            images_per_sec=images_per_step * ran / total_time if total_time else 0.0,
            step_time=total_time / ran if ran else 0.0,
            steps_run=ran,
            losses=losses,
            metrics=metrics,
            checkpoint_dir=kept,
        )

    def _batch(self, data: TrainingData, indices: torch.Tensor) -> torch.Tensor:
        """One minibatch on the training device in its memory format (fp32); streamed rows are range-checked."""
        batch = data.take(indices)
        if not isinstance(data, TensorData):  # a tensor was checked whole by check_data
            check_values(batch, f"data (minibatch of rows {indices[:4].tolist()}...)")
        batch = batch.to(self.device, dtype=torch.float32, non_blocking=True)
        return batch.contiguous(memory_format=self.memory_format)

    # --- checkpoints --------------------------------------------------------------------------------------

    def save_checkpoint(self, directory: str | Path) -> Path:
        """Write a complete checkpoint to ``directory`` (created if needed) and return it."""
        config = self._require_config()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MANIFEST_NAME).unlink(missing_ok=True)  # absent until the checkpoint is complete
        with torch.random.fork_rng(devices=[]):  # from_config inits (EMA save) must not touch the caller's RNG
            self._save_weights(directory)
        state = {"step": self.step, "rng": {"generator": self.rng.get_state()}, **self._training_state()}
        save_state(directory, STATE_NAME, state)
        write_manifest(directory, self.name, self.step, config.model_dump(mode="json"))
        return directory

    def load_checkpoint(self, directory: str | Path) -> None:
        """Rebuild from the checkpoint's config and restore weights, optimizer, schedules, EMA, RNG and step."""
        directory = Path(directory)
        manifest = read_manifest(directory)
        if manifest["trainer"] != self.name:
            raise CheckpointError(
                f"checkpoint {str(directory)!r} was written by trainer {manifest['trainer']!r}, not {self.name!r}"
            )
        self.setup(self.validate_config(manifest["config"]))
        with torch.random.fork_rng(devices=[]):
            self._load_weights(directory)
        state = load_state(directory, STATE_NAME)
        self._load_training_state(state)
        self.rng.set_state(state["rng"]["generator"])
        self.step = int(state["step"])

    def _require_config(self) -> ConfigT:
        if self.config is None:
            raise ParameterError(f"trainer {self.name!r} is not set up: pass a config or load a checkpoint first")
        return self.config

    # --- hooks for concrete trainers ----------------------------------------------------------------------

    @abstractmethod
    def _build(self, config: ConfigT) -> None:
        """Create modules, optimizers and schedules on ``self.device`` (global RNG is seeded for init)."""

    @abstractmethod
    def _train_step(self, batches: list[torch.Tensor]) -> dict[str, float]:
        """One optimizer step over ``batches`` (micro-batches); return float metrics including ``loss``."""

    def _extra_metrics(self) -> dict[str, float]:
        """Metrics read at report time (learning rate, EMA decay, ...)."""
        return {}

    def _config_updated(self, previous: ConfigT, config: ConfigT) -> None:
        """React to a resumable field change (e.g. a longer ``steps`` budget stretches the LR schedule)."""

    @abstractmethod
    def _save_weights(self, directory: Path) -> None:
        """Write model weights (safetensors) into ``directory``."""

    @abstractmethod
    def _load_weights(self, directory: Path) -> None:
        """Load model weights written by ``_save_weights``."""

    @abstractmethod
    def _training_state(self) -> dict[str, Any]:
        """Optimizer / scheduler / scaler state dicts to checkpoint (tensors allowed)."""

    @abstractmethod
    def _load_training_state(self, state: dict[str, Any]) -> None:
        """Restore what ``_training_state`` returned."""

    @abstractmethod
    def sample(self, n: int, seed: int, *, inference_steps: int | None = None) -> torch.Tensor:
        """``n`` images as a uint8 CPU tensor N x C x H x W; the same seed gives the same images.

        ``inference_steps`` overrides the denoising steps of iterative samplers; one-shot generators ignore it.
        """


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Map model output in [-1, 1] to uint8 [0, 255] on CPU (as DDPMPipeline + numpy_to_pil round it)."""
    return ((images.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).cpu().contiguous()


TRAINERS: Registry[type[Trainer[Any]]] = Registry("trainer", TRAINER_ENTRY_POINT_GROUP)


def build_trainer(
    name: str, params: TrainConfig | Mapping[str, Any] | None = None, *, device: DeviceName | torch.device = "auto"
) -> Trainer[Any]:
    """Factory: look a trainer up by name and build it with validated params (errors name field and range)."""
    cls = TRAINERS.get(name)
    return cls(cls.validate_config(params or {}), device=device)


def load_trainer(directory: str | Path, *, device: DeviceName | torch.device = "auto") -> Trainer[Any]:
    """Open any checkpoint: pick the trainer class named in its manifest and restore it."""
    manifest = read_manifest(directory)
    trainer = TRAINERS.get(manifest["trainer"])(device=device)
    trainer.load_checkpoint(directory)
    return trainer
