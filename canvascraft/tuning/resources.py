"""Per-trial resources: the spec's ``tuner.resources`` reconciled with the device and the cluster's GPUs."""

from __future__ import annotations

from dataclasses import dataclass

from canvascraft.device import DeviceUnavailableError


@dataclass(frozen=True)
class TrialPlan:
    """What each trial asks Ray for and which device string it resolves inside the worker."""

    cpu: float
    gpu: float
    device: str
    note: str = ""

    def resources(self) -> dict[str, float]:
        """``tune.with_resources`` argument."""
        return {"cpu": self.cpu, "gpu": self.gpu}


def plan_trials(device: str, cpu: float, gpu: float, cluster_gpus: float) -> TrialPlan:
    """``cuda`` needs GPUs in the cluster (clear error otherwise); ``auto`` uses them when present, else CPU.

    Fractional ``gpu`` (e.g. 0.5) packs several trials on one GPU, as Ray allows.
    """
    if device == "cpu":
        return TrialPlan(cpu, 0.0, "cpu", "device cpu: GPUs are not requested")
    if device == "cuda":
        if cluster_gpus <= 0:
            raise DeviceUnavailableError(
                "device: 'cuda' was requested but the Ray cluster has no GPU; "
                "allowed values here: auto, cpu (or connect CANVASCRAFT_RAY_ADDRESS to a cluster with GPUs)"
            )
        return TrialPlan(cpu, gpu if gpu > 0 else 1.0, "cuda")
    if cluster_gpus > 0:
        return TrialPlan(cpu, gpu if gpu > 0 else 1.0, "auto")
    return TrialPlan(cpu, 0.0, "cpu", "device auto: no GPU in the Ray cluster, trials run on CPU")
