"""The training sections: the trainer with its search space, and the Ray Tune search with per-trial resources."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from canvascraft.spec.base import ComponentSpec, SpecSection


class SearchDimension(SpecSection):
    """One hyper-parameter of the trainer's search space."""

    type: Literal["choice", "uniform", "loguniform", "randint"]
    values: list[Any] | None = None
    low: float | None = None
    high: float | None = None


class TrainerSpec(ComponentSpec):
    """The trainer strategy, its fixed parameters and its search space."""

    search_space: dict[str, SearchDimension] = Field(default_factory=dict)


class ResourcesSpec(SpecSection):
    """Per-trial resources (per worker when ``tuner.workers_per_trial`` > 1); fractional GPUs for one-worker trials."""

    cpu: float = Field(default=1, gt=0, le=256)
    gpu: float = Field(default=0, ge=0, le=16)


class TunerSpec(SpecSection):
    """Ray Tune search: algorithm, scheduler, budget and per-trial resources."""

    search: Literal["random", "optuna"] = "random"
    scheduler: Literal["fifo", "asha", "hyperband"] = "fifo"
    num_samples: int = Field(default=2, ge=1, le=10000)
    metric: str = "loss"
    mode: Literal["min", "max"] = "min"
    max_concurrent_trials: int | None = Field(default=None, ge=1)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    checkpoint_every: int = Field(default=50, ge=1)
    max_failures: int = Field(default=2, ge=0, le=100)
    workers_per_trial: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Data-parallel (DDP) Ray Train workers per "
        "trial; > 1 makes tuner.resources per worker (see tuning/resources.py).",
    )
