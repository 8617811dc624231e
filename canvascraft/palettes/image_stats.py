"""Global image statistics palette: brightness, contrast, saturation, colourfulness, sharpness, entropy, edges.

All values are on the [0, 1] intensity scale of the input (not 0..255). Luminance is ITU-R BT.601:
``Y = 0.299 R + 0.587 G + 0.114 B``; a single-channel image is its own luminance and has zero saturation and
colourfulness. Spatial filters (Laplacian, Sobel) are applied "valid" (no padding), so borders add no fake edges;
images must be at least 3 x 3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from canvascraft.errors import ParameterError
from canvascraft.palettes.base import PALETTES, FeatureDType, Palette

BT601 = (0.299, 0.587, 0.114)
ENTROPY_BINS = 256
_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
# Sobel scaled by 1/4 so that a full 0 -> 1 step edge has gradient magnitude 1.0.
_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4.0


@PALETTES.register("image_stats")
class ImageStatsPalette(Palette):
    """Seven per-image statistics (columns in this order).

    - ``brightness``: mean luminance (BT.601).
    - ``contrast``: population standard deviation of luminance (RMS contrast).
    - ``saturation``: mean HSV saturation ``(max - min) / max`` over RGB (0 where max is 0; 0 for gray input).
    - ``colorfulness``: Hasler & Suesstrunk (2003), "Measuring colourfulness in natural images", Proc. SPIE 5007,
      Human Vision and Electronic Imaging VIII, pp. 87-95: with ``rg = R - G`` and ``yb = (R + G) / 2 - B``,
      ``sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2)``. On the [0, 1] scale: multiply by 255
      to compare with the paper's thresholds (e.g. 33 "moderately colourful").
    - ``sharpness``: variance of the 3 x 3 Laplacian ``[[0,1,0],[1,-4,1],[0,1,0]]`` of luminance.
    - ``entropy``: Shannon entropy in bits of the 256-bin luminance histogram (0 for a flat image, at most 8).
    - ``edge_density``: fraction of pixels whose Sobel gradient magnitude (kernel / 4, so a 0 -> 1 step reads 1.0)
      exceeds ``edge_threshold``.
    """

    name = "image_stats"
    edge_threshold: float = Field(
        default=0.2, gt=0.0, le=1.5, description="Sobel magnitude (kernel / 4) above which a pixel is an edge."
    )

    def feature_names(self) -> dict[str, FeatureDType]:
        """The seven statistics, all float32."""
        names = ("brightness", "contrast", "saturation", "colorfulness", "sharpness", "entropy", "edge_density")
        return dict.fromkeys(names, "float32")

    def compute(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Vectorised over the batch: reductions, one bincount and three 3 x 3 convolutions."""
        if images.shape[2] < 3 or images.shape[3] < 3:
            raise ParameterError(
                f"palette {self.name!r}: images must be at least 3 x 3 pixels, got {tuple(images.shape[2:])}"
            )
        y = luminance(images)
        flat = y.flatten(1)
        return {
            "brightness": flat.mean(1),
            "contrast": flat.std(1, correction=0),
            "saturation": saturation(images),
            "colorfulness": colorfulness(images),
            "sharpness": _conv(y, _LAPLACIAN).flatten(1).var(1, correction=0),
            "entropy": entropy_bits(y),
            "edge_density": (sobel_magnitude(y) > self.edge_threshold).flatten(1).float().mean(1),
        }


def luminance(images: torch.Tensor) -> torch.Tensor:
    """``B x 1 x H x W`` BT.601 luminance (a single channel is returned as is)."""
    if images.shape[1] == 1:
        return images
    weights = torch.tensor(BT601, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True)


def saturation(images: torch.Tensor) -> torch.Tensor:
    """Mean HSV saturation per image; zero for single-channel input."""
    if images.shape[1] == 1:
        return images.new_zeros(images.shape[0])
    high, low = images.amax(1), images.amin(1)
    sat = torch.where(high > 0, (high - low) / high.clamp_min(1e-12), torch.zeros_like(high))
    return sat.flatten(1).mean(1)


def colorfulness(images: torch.Tensor) -> torch.Tensor:
    """Hasler-Suesstrunk colourfulness per image on the [0, 1] scale; zero for single-channel input."""
    if images.shape[1] == 1:
        return images.new_zeros(images.shape[0])
    r, g, b = images.flatten(2).unbind(1)
    rg, yb = r - g, 0.5 * (r + g) - b
    spread = (rg.var(1, correction=0) + yb.var(1, correction=0)).sqrt()
    offset = (rg.mean(1) ** 2 + yb.mean(1) ** 2).sqrt()
    return spread + 0.3 * offset


def entropy_bits(y: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (bits) of each image's 256-bin luminance histogram, via one offset bincount."""
    b, pixels = y.shape[0], y.shape[2] * y.shape[3]
    index = (y.reshape(b, pixels) * ENTROPY_BINS).long().clamp_(0, ENTROPY_BINS - 1)
    index += torch.arange(b, device=y.device).unsqueeze(1) * ENTROPY_BINS
    p = torch.bincount(index.flatten(), minlength=b * ENTROPY_BINS).reshape(b, ENTROPY_BINS).float() / pixels
    return -(p * torch.where(p > 0, p.log2(), torch.zeros_like(p))).sum(1)


def sobel_magnitude(y: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of the (1/4-scaled) Sobel operator, ``B x 1 x (H-2) x (W-2)``."""
    gx = _conv(y, _SOBEL_X)
    gy = _conv(y, _SOBEL_X.t())
    return torch.sqrt(gx * gx + gy * gy)


def _conv(y: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Valid (unpadded) 2-D cross-correlation of a ``B x 1 x H x W`` batch with one 3 x 3 kernel."""
    return F.conv2d(y, kernel.to(dtype=y.dtype, device=y.device).view(1, 1, 3, 3))
