"""Device resolution, autocast dtype and memory format, with hardware capabilities injected."""

from __future__ import annotations

import pytest
import torch

from canvascraft.device import DeviceUnavailableError, autocast, autocast_dtype, memory_format, resolve_device
from canvascraft.errors import SpecError

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def has_gpu() -> bool:
    return True


def no_gpu() -> bool:
    return False


def test_auto_uses_cuda_when_present_and_falls_back_to_cpu() -> None:
    assert resolve_device("auto", cuda_available=has_gpu) == CUDA
    assert resolve_device("auto", cuda_available=no_gpu) == CPU


def test_cpu_is_always_cpu() -> None:
    assert resolve_device("cpu", cuda_available=has_gpu) == CPU


def test_cuda_without_gpu_is_a_clear_spec_error() -> None:
    with pytest.raises(DeviceUnavailableError, match=r"device: 'cuda' was requested but no CUDA GPU.*auto, cpu"):
        resolve_device("cuda", cuda_available=no_gpu)
    assert issubclass(DeviceUnavailableError, SpecError)
    assert resolve_device("cuda", cuda_available=has_gpu) == CUDA


def test_a_chosen_torch_device_passes_through_without_probing() -> None:
    def probe_must_not_run() -> bool:
        raise AssertionError("an explicit torch.device needs no hardware probe")

    assert resolve_device(torch.device("cuda", 1), cuda_available=probe_must_not_run) == torch.device("cuda", 1)
    assert resolve_device(CPU, cuda_available=probe_must_not_run) == CPU


def test_unknown_device_lists_allowed_values() -> None:
    with pytest.raises(SpecError, match=r"device: unknown value 'gpu'; allowed values: auto, cpu, cuda"):
        resolve_device("gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_this_machine_resolves_to_cpu() -> None:
    assert resolve_device("auto") == CPU
    with pytest.raises(DeviceUnavailableError):
        resolve_device("cuda")


def test_autocast_dtype_bf16_when_supported_else_fp16_and_none_on_cpu() -> None:
    assert autocast_dtype(CUDA, bf16_supported=lambda: True) == torch.bfloat16
    assert autocast_dtype(CUDA, bf16_supported=lambda: False) == torch.float16
    assert autocast_dtype(CPU, bf16_supported=lambda: True) is None


def test_channels_last_only_on_cuda() -> None:
    assert memory_format(CUDA) == torch.channels_last
    assert memory_format(CPU) == torch.contiguous_format


def test_autocast_is_a_no_op_without_dtype() -> None:
    with autocast(CPU, None):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(CPU, torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")


def test_optimizer_flags_fused_on_cuda_foreach_on_cpu_and_same_update() -> None:
    from canvascraft.device import multi_tensor_kwargs

    assert multi_tensor_kwargs(torch.device("cuda")) == {"fused": True}
    assert multi_tensor_kwargs(torch.device("cpu")) == {"foreach": True}
    # foreach is an implementation choice only: the AdamW update equals the per-tensor loop's.
    params = {}
    for name, flags in (("loop", {"foreach": False}), ("multi", multi_tensor_kwargs(torch.device("cpu")))):
        torch.manual_seed(0)
        layer = torch.nn.Linear(8, 4)
        optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-2, **flags)
        for _ in range(3):
            layer(torch.ones(2, 8)).square().sum().backward()
            optimizer.step()
            optimizer.zero_grad()
        params[name] = [p.detach().clone() for p in layer.parameters()]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(params["loop"], params["multi"], strict=True))
