"""Per-trial resources: the spec's ``tuner.resources`` reconciled with the device, the workers per trial and the
cluster's CPUs and GPUs.

A one-worker trial trains inside its Tune actor, which holds the resources. A multi-worker trial's Tune actor only
drives a Ray Train run (it waits on it); each of its ``workers_per_trial`` Train workers holds ``tuner.resources``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from canvascraft.device import DeviceUnavailableError
from canvascraft.errors import SpecError

if TYPE_CHECKING:
    from canvascraft.spec import PipelineSpec

# Logical memory (bytes) the driver of a multi-worker trial asks for: Ray needs one non-zero resource for an actor's
# placement group, and a CPU there would be taken from the workers (3 CPUs for 2 one-CPU workers on a 2-CPU node).
DRIVER_MEMORY = 256 * 1024**2


@dataclass(frozen=True)
class TrialPlan:
    """What each trial asks Ray for and which device string it resolves inside the worker(s)."""

    cpu: float
    gpu: float
    device: str
    note: str = ""
    workers: int = 1  # Ray Train workers per trial; cpu and gpu are per worker when > 1

    def resources(self) -> dict[str, float]:
        """``tune.with_resources`` argument: the trial's own resources, or its driver's when it has workers."""
        if self.workers > 1:
            return {"cpu": 0.0, "gpu": 0.0, "memory": DRIVER_MEMORY}
        return {"cpu": self.cpu, "gpu": self.gpu}

    def worker_resources(self) -> dict[str, float]:
        """Ray Train ``ScalingConfig(resources_per_worker=...)`` of a multi-worker trial."""
        return {"CPU": self.cpu, "GPU": self.gpu} if self.gpu > 0 else {"CPU": self.cpu}

    def concurrent_trials(self, cluster_cpus: float, cluster_gpus: float) -> int | None:
        """How many multi-worker trials fit the cluster at once (None for one-worker trials: Tune packs those).

        Each Tune driver of a Train run that cannot get its workers would otherwise start and wait (Ray Train guide,
        "Set max_concurrent_trials to limit the number of Ray Train driver processes").
        """
        if self.workers == 1:
            return None
        fits = [cluster_cpus // (self.workers * self.cpu)]
        if self.gpu > 0:
            fits.append(cluster_gpus // (self.workers * self.gpu))
        return max(1, int(min(fits)))


def plan_trials(
    device: str, cpu: float, gpu: float, cluster_gpus: float, *, workers: int = 1, cluster_cpus: float | None = None
) -> TrialPlan:
    """``cuda`` needs GPUs in the cluster (clear error otherwise); ``auto`` uses them when present, else CPU.

    Fractional ``gpu`` (e.g. 0.5) packs several one-worker trials on one GPU, as Ray allows. With ``workers`` > 1 the
    resources are per worker and one trial's workers must fit the cluster (``cluster_cpus``, ``cluster_gpus``).
    """
    if device == "cpu":
        plan = TrialPlan(cpu, 0.0, "cpu", "device cpu: GPUs are not requested", workers)
    elif device == "cuda":
        if cluster_gpus <= 0:
            raise DeviceUnavailableError(
                "device: 'cuda' was requested but the Ray cluster has no GPU; "
                "allowed values here: auto, cpu (or connect CANVASCRAFT_RAY_ADDRESS to a cluster with GPUs)"
            )
        plan = TrialPlan(cpu, gpu if gpu > 0 else 1.0, "cuda", workers=workers)
    elif cluster_gpus > 0:
        plan = TrialPlan(cpu, gpu if gpu > 0 else 1.0, "auto", workers=workers)
    else:
        plan = TrialPlan(cpu, 0.0, "cpu", "device auto: no GPU in the Ray cluster, trials run on CPU", workers)
    if workers > 1:
        _check_fits(plan, cluster_cpus, cluster_gpus)
    return plan


def _check_fits(plan: TrialPlan, cluster_cpus: float | None, cluster_gpus: float) -> None:
    """One trial's workers must fit the cluster, or its Train run would wait for resources forever."""
    for kind, each, total in (("cpu", plan.cpu, cluster_cpus), ("gpu", plan.gpu, cluster_gpus)):
        if total is None or each <= 0 or plan.workers * each <= total:
            continue
        most = int(total // each)
        raise SpecError(
            f"tuner.workers_per_trial={plan.workers} x tuner.resources.{kind}={each:g} needs {plan.workers * each:g} "
            f"{kind.upper()}s per trial but the Ray cluster has {total:g}; allowed values here: workers_per_trial "
            f"<= {most} at resources.{kind}={each:g}"
            + (f", or resources.{kind} <= {total / plan.workers:g}" if kind == "cpu" else "")
        )


def check_workers_per_trial(spec: PipelineSpec) -> list[str]:
    """Spec problems of ``tuner.workers_per_trial`` > 1: one whole GPU per worker, a data-parallel trainer, an even
    split of the global batch (the cluster-size check happens when the search plans its trials)."""
    from canvascraft.trainers.distributed import check_workers

    tuner = spec.tuner
    workers, gpu = tuner.workers_per_trial, tuner.resources.gpu
    problems = []
    if gpu not in (0, 1):
        problems.append(
            f"tuner.resources.gpu: {gpu:g} with tuner.workers_per_trial={workers}: each data-parallel "
            "worker drives one whole GPU (NCCL needs one per rank); allowed values: 0, 1"
        )
    elif spec.device == "cuda" and gpu == 0:
        problems.append(
            f"tuner.resources.gpu: device 'cuda' with tuner.workers_per_trial={workers} needs one GPU "
            "per worker; allowed values: 1 (or device auto, cpu)"
        )
    if spec.trainer is not None:
        dim = spec.trainer.search_space.get("batch_size")
        choices = None if dim is None else list(dim.values or []) if dim.type == "choice" else [f"a {dim.type} range"]
        problems.extend(check_workers(spec.trainer.name, workers, spec.trainer.params, choices))
    return problems
