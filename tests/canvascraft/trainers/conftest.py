"""Shared fixture: real images (scikit-learn digits) at 16 x 16 in [-1, 1], as the normalize brush outputs them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F


@pytest.fixture(scope="session")
def digits16() -> torch.Tensor:
    """scikit-learn's 1,797 real 8x8 digits, bilinearly upscaled to 16x16, mapped to [-1, 1] (normalize brush)."""
    from sklearn.datasets import load_digits

    pixels = torch.from_numpy(load_digits().images.astype("float32") / 16.0).unsqueeze(1)
    upscaled = F.interpolate(pixels, size=16, mode="bilinear", align_corners=False).clamp(0.0, 1.0)
    return upscaled * 2.0 - 1.0
