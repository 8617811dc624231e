"""Per-channel colour histogram palette: ``bins`` normalised counts per R, G and B channel."""

from __future__ import annotations

import torch
from pydantic import Field

from canvascraft.palettes.base import PALETTES, FeatureDType, Palette


@PALETTES.register("rgb_histogram")
class RGBHistogramPalette(Palette):
    """Fraction of pixels per intensity bin, per channel: columns ``hist_r_00`` ... ``hist_b_<bins-1>``.

    Bin ``k`` holds values in ``[k / bins, (k + 1) / bins)``; 1.0 falls in the last bin. Each channel's
    histogram sums to 1.

    Grayscale (C == 1): the single channel stands for R, G and B, so its histogram fills all three column
    groups. A gray image therefore gets exactly the features of its RGB copy (R = G = B), and gray and colour
    datasets share one schema (one Feast feature view per ``bins``).
    """

    name = "rgb_histogram"
    bins: int = Field(default=16, ge=2, le=256, description="Bins per channel (2..256).")

    def feature_names(self) -> dict[str, FeatureDType]:
        """``hist_<channel>_<bin>`` for channels r, g, b; bin numbers zero-padded to equal width."""
        width = max(2, len(str(self.bins - 1)))
        return {f"hist_{c}_{k:0{width}d}": "float32" for c in "rgb" for k in range(self.bins)}

    def compute(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """One ``bincount`` over bin indices offset by (image, channel): no per-pixel Python loop."""
        b, c = images.shape[:2]
        pixels = images.shape[2] * images.shape[3]
        index = (images.reshape(b * c, pixels) * self.bins).long().clamp_(0, self.bins - 1)
        index += torch.arange(b * c, device=images.device).unsqueeze(1) * self.bins
        counts = torch.bincount(index.flatten(), minlength=b * c * self.bins).reshape(b, c, self.bins)
        hist = counts.to(torch.float32) / pixels
        if c == 1:
            hist = hist.expand(b, 3, self.bins)
        columns = hist.permute(1, 2, 0).reshape(3 * self.bins, b)  # channel-major, then bin
        return dict(zip(self.feature_names(), columns.unbind(0), strict=True))
