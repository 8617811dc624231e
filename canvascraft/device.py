"""Device choice for training: resolve the spec's ``device``, pick an autocast dtype and a memory format.

Hardware probes are injectable callables so every branch (GPU present or not, bf16 or not) is testable on CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Literal, get_args

import torch

from canvascraft.errors import SpecError

DeviceName = Literal["auto", "cpu", "cuda"]
DEVICE_NAMES: tuple[str, ...] = get_args(DeviceName)


class DeviceUnavailableError(SpecError):
    """The spec asks for a device this machine does not have."""


def _cuda_available() -> bool:
    """``torch.cuda.is_available()`` (a CUDA build of torch on a machine without a GPU answers False)."""
    return torch.cuda.is_available()


def _bf16_supported() -> bool:
    """``torch.cuda.is_bf16_supported()``: Ampere (sm_80) or newer."""
    return torch.cuda.is_bf16_supported()


def resolve_device(
    requested: DeviceName | str | torch.device = "auto",
    *,
    cuda_available: Callable[[], bool] = _cuda_available,
) -> torch.device:
    """Map the spec's ``device`` (auto|cpu|cuda) to a torch device; ``auto`` falls back to CPU, ``cuda`` never does.

    The one place that chooses a device: a ``torch.device`` (e.g. ``cuda:1`` handed out by Ray Train) is already
    chosen and passes through unchanged.
    """
    if isinstance(requested, torch.device):
        return requested
    if requested not in DEVICE_NAMES:
        raise SpecError(f"device: unknown value {requested!r}; allowed values: {', '.join(DEVICE_NAMES)}")
    if requested == "cpu":
        return torch.device("cpu")
    has_cuda = cuda_available()
    if requested == "cuda" and not has_cuda:
        raise DeviceUnavailableError(
            f"device: 'cuda' was requested but no CUDA GPU is available "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}); "
            f"allowed values on this machine: auto, cpu"
        )
    return torch.device("cuda") if has_cuda else torch.device("cpu")


def autocast_dtype(
    device: torch.device,
    *,
    bf16_supported: Callable[[], bool] = _bf16_supported,
) -> torch.dtype | None:
    """Mixed-precision dtype: bf16 on CUDA when supported (no loss scaling needed), else fp16; None on CPU."""
    if device.type != "cuda":
        return None  # CPU autocast (bf16) is slower than fp32 for these small convnets and changes numerics
    return torch.bfloat16 if bf16_supported() else torch.float16


def memory_format(device: torch.device) -> torch.memory_format:
    """``channels_last`` on CUDA (faster cuDNN convolutions with tensor cores), contiguous elsewhere."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[None]:
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op context when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def multi_tensor_kwargs(device: torch.device) -> dict[str, bool]:
    """Optimizer implementation flags: ``fused`` on CUDA (one kernel per step), ``foreach`` elsewhere.

    torch defaults to ``foreach`` only when every parameter is on CUDA, so CPU training otherwise pays a Python loop
    over parameters in every Adam step (measured in bench/training.py).
    """
    return {"fused": True} if device.type == "cuda" else {"foreach": True}
