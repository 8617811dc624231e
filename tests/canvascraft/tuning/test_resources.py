"""Per-trial resources and device choice, on CPU (the GPU cases inject the cluster's GPU count)."""

from __future__ import annotations

import pytest

from canvascraft.device import DeviceUnavailableError
from canvascraft.tuning.resources import plan_trials


def test_auto_without_gpus_falls_back_to_cpu() -> None:
    plan = plan_trials("auto", cpu=1, gpu=1, cluster_gpus=0)
    assert plan.resources() == {"cpu": 1, "gpu": 0.0} and plan.device == "cpu" and "no GPU" in plan.note


def test_auto_with_gpus_requests_them_fractional_allowed() -> None:
    assert plan_trials("auto", cpu=2, gpu=0.5, cluster_gpus=1).resources() == {"cpu": 2, "gpu": 0.5}
    assert plan_trials("auto", cpu=2, gpu=0, cluster_gpus=4).resources() == {"cpu": 2, "gpu": 1.0}


def test_cuda_without_gpus_is_a_clear_error() -> None:
    with pytest.raises(DeviceUnavailableError, match=r"device: 'cuda'.*allowed values here: auto, cpu"):
        plan_trials("cuda", cpu=1, gpu=1, cluster_gpus=0)


def test_cpu_never_requests_gpus() -> None:
    assert plan_trials("cpu", cpu=1, gpu=1, cluster_gpus=8).resources() == {"cpu": 1, "gpu": 0.0}
