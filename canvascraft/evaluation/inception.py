"""Features of the FID Inception network (64/192/768/2048-d) from uint8 images, resized to 299 by a named method.

The weights (found by ``inception_weights``, TorchScript renamed by ``inception_names``) are re-saved in
torch-fidelity's layout and loaded into torch-fidelity's own ``FeatureExtractorInceptionV3`` from that local file
(``feature_extractor_weights_path``: it downloads only when given no path). Its modules are the network;
torchmetrics' ``NoTrainInceptionV3`` subclasses the same class, so features match torch-fidelity and torchmetrics.

Why ``InceptionFeatureExtractor.forward`` runs those modules itself instead of calling torch-fidelity's
``forward``: that forward accepts only uint8 images and always applies its own TF1-style bilinear resize. Measured
on 4 random 28x40 images at all four taps, with these weights: for ``bilinear``, and for ``nearest`` (resized to
299 in uint8 first; its bilinear resize at 299 -> 299 is then the identity), torch-fidelity's forward gives the
same features bit for bit (max abs difference 0.0). For ``bicubic`` the float resize result would have to be
rounded to uint8 to pass through it, which moves the features by up to 0.014 (64-d) and 0.054 (2048-d), far above
1e-5, and would make bicubic scores disagree with statistics already cached. So the resize is done here and the
modules are then run in torch-fidelity's order up to the requested tap (``_STAGES``); the tests check this against
torch-fidelity's forward at every tap (``tests/canvascraft/evaluation/test_inception.py``).

The public names of ``inception_weights``, ``inception_names`` and the ``FeatureDims``/``ResizeMode`` choices of
``score_records`` are re-exported here, so imports from ``canvascraft.evaluation.inception`` keep working.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from canvascraft.evaluation import EvaluationInputError, InceptionWeightsError
from canvascraft.evaluation.inception_names import (
    CONV_NAMES,
    nan_classifier_head,
    torchscript_to_state_dict,
)
from canvascraft.evaluation.inception_weights import (
    FID_HELPER_FILENAME,
    FID_HELPER_PACKAGE,
    HUB_FILENAMES,
    INCEPTION_DIR,
    InceptionWeights,
    WeightsFormat,
    WeightsSource,
    fetch_s3_weights,
    fid_helper_weights_path,
    hub_weights_path,
    locate_inception_weights,
    weights_format,
    weights_sha256,
)
from canvascraft.evaluation.score_records import (
    FEATURE_DIMS,
    RESIZE_MODES,
    FeatureDims,
    ResizeMode,
    as_feature_dims,
    as_resize_mode,
)
from canvascraft.files import atomic_path

__all__ = [
    "CONV_NAMES",
    "FEATURE_DIMS",
    "FID_HELPER_FILENAME",
    "FID_HELPER_PACKAGE",
    "HUB_FILENAMES",
    "INPUT_SIZE",
    "RESIZE_MODES",
    "FeatureDims",
    "ImageBatch",
    "InceptionFeatureExtractor",
    "InceptionWeights",
    "ResizeMode",
    "WeightsFormat",
    "WeightsSource",
    "as_uint8_images",
    "fetch_s3_weights",
    "fid_helper_weights_path",
    "hub_weights_path",
    "load_feature_extractor",
    "locate_inception_weights",
    "resize_to_input",
    "torch_fidelity_weights_path",
    "torchscript_to_state_dict",
    "weights_format",
    "weights_sha256",
]

INPUT_SIZE = 299  # FeatureExtractorInceptionV3.INPUT_IMAGE_SIZE
ImageBatch = np.ndarray | torch.Tensor


# ----------------------------------------------------------------------------------- weights in torch-fidelity's layout


def _load_state_dict(weights: InceptionWeights) -> dict[str, torch.Tensor]:
    """The weights as a torch-fidelity-layout state dict (pickles are read with ``weights_only=True``)."""
    if weights.format == "torchscript":
        return torchscript_to_state_dict(weights.path)
    try:
        state = torch.load(weights.path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InceptionWeightsError(f"{weights.path}: not a loadable state dict: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InceptionWeightsError(f"{weights.path}: expected a mapping of tensor names to tensors")
    if "fc.weight" not in state:  # same convention as the head-less TorchScript graph
        return dict(state) | nan_classifier_head()
    return dict(state)


def torch_fidelity_weights_path(weights: InceptionWeights, cache_dir: str | Path) -> Path:
    """A torch-fidelity-layout ``.pth`` of these weights under ``<cache_dir>/inception`` (written once per sha256).

    Pass it as ``feature_extractor_weights_path`` to torch-fidelity's ``FeatureExtractorInceptionV3`` or
    torchmetrics' ``FrechetInceptionDistance``/``NoTrainInceptionV3``. Every source is re-saved (plain tensors only)
    because torch-fidelity reads the file with ``weights_only=False``: a configured file is never unpickled that way.
    """
    target = Path(cache_dir) / INCEPTION_DIR / f"torch-fidelity-{weights.sha256[:24]}.pth"
    if target.is_file():
        return target
    state = _load_state_dict(weights)
    with atomic_path(target) as tmp:
        torch.save(state, tmp)
        _network_from_file(tmp, "2048")  # torch-fidelity's strict load: a wrong layout fails here, file named
    return target


def _network_from_file(path: Path, feature: str) -> nn.Module:
    """torch-fidelity's InceptionV3 (eval mode, no grad) from a torch-fidelity-layout file this module wrote."""
    from torch_fidelity.feature_extractor_inceptionv3 import (
        FeatureExtractorInceptionV3,  # given a path it never downloads
    )

    try:
        return FeatureExtractorInceptionV3("inception-v3-compat", [feature], feature_extractor_weights_path=str(path))
    except RuntimeError as exc:  # load_state_dict(strict=True): missing/unexpected keys or shape mismatch
        raise InceptionWeightsError(f"weights do not fit the FID InceptionV3 (2015-12-05) layout: {exc}") from None


# ---------------------------------------------------------------------------------------------- feature extraction

# torch-fidelity's forward, cut into the stages that end at each feature tap (its module names; see the module
# docstring for why it is not called as is).
_STAGES: tuple[tuple[int, tuple[str, ...]], ...] = (
    (64, ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1")),
    (192, ("Conv2d_3b_1x1", "Conv2d_4a_3x3", "MaxPool_2")),
    (768, ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e")),
    (2048, ("Mixed_7a", "Mixed_7b", "Mixed_7c")),
)


def _torch_device(device: str | torch.device) -> torch.device:
    """The spec's ``auto``/``cpu``/``cuda`` or an explicit device (``cuda:1``), chosen by ``resolve_device``."""
    from canvascraft.device import DEVICE_NAMES, resolve_device

    return resolve_device(str(device) if str(device) in DEVICE_NAMES else torch.device(device))


def resize_to_input(images: torch.Tensor, mode: ResizeMode) -> torch.Tensor:
    """Float images (N, C, H, W) in [0, 255] -> (N, C, 299, 299), by the named method.

    * ``bilinear``: torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x`` (align_corners=False), the
      resize of the original TF FID code, pytorch-fid/torch-fidelity and torchmetrics with ``antialias=False``
      (torchmetrics' default ``antialias=True`` differs when downscaling).
    * ``bicubic``: ``F.interpolate(mode="bicubic", antialias=True)`` clamped to [0, 255] (PIL-like; no quantising).
    * ``nearest``: ``F.interpolate(mode="nearest-exact")`` (pixel-centre sampling, as PIL/scikit-image).
    """
    if mode == "bilinear":
        from torch_fidelity.interpolate_compat_tensorflow import (
            interpolate_bilinear_2d_like_tensorflow1x,
        )

        return interpolate_bilinear_2d_like_tensorflow1x(images, size=(INPUT_SIZE, INPUT_SIZE), align_corners=False)
    if mode == "bicubic":
        resized = F.interpolate(
            images, size=(INPUT_SIZE, INPUT_SIZE), mode="bicubic", align_corners=False, antialias=True
        )
        return resized.clamp(0.0, 255.0)
    if mode == "nearest":
        return F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="nearest-exact")
    raise EvaluationInputError("resize", f"unknown mode {mode!r}", RESIZE_MODES)


def as_uint8_images(images: ImageBatch, field: str = "images") -> torch.Tensor:
    """A uint8 (N, 3, H, W) CPU tensor from a uint8 (N, 1|3, H, W) array or tensor (grayscale repeated to 3)."""
    tensor = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(images))
    if tensor.dtype != torch.uint8:
        raise EvaluationInputError(field, f"dtype is {tensor.dtype}", "uint8 in [0, 255]")
    if tensor.ndim != 4 or tensor.shape[1] not in (1, 3):
        raise EvaluationInputError(field, f"shape is {tuple(tensor.shape)}", "N x 1 x H x W or N x 3 x H x W")
    if tensor.shape[0] == 0 or tensor.shape[2] < 1 or tensor.shape[3] < 1:
        raise EvaluationInputError(field, f"shape {tuple(tensor.shape)} holds no pixels")
    return tensor.expand(-1, 3, -1, -1) if tensor.shape[1] == 1 else tensor


class InceptionFeatureExtractor(nn.Module):
    """FID Inception features (64/192/768/2048-d) of uint8 images, resized to 299 by an explicit method.

    Runs torch-fidelity's InceptionV3 modules up to the requested tap only (64-d stops after the stem). Has
    ``num_features`` so it also serves as a torchmetrics custom ``feature`` module.
    """

    def __init__(
        self,
        weights: InceptionWeights,
        *,
        cache_dir: str | Path,
        dims: FeatureDims = 2048,
        resize: ResizeMode = "bilinear",
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        self.weights = weights
        self.dims: FeatureDims = as_feature_dims(dims, "evaluator.dims")
        self.resize = as_resize_mode(resize, "evaluator.resize")
        self.device = _torch_device(device)
        self.net = _network_from_file(torch_fidelity_weights_path(weights, cache_dir), str(dims)).to(self.device)
        self.net.requires_grad_(False)
        self.eval()
        self._modules_to_tap = [getattr(self.net, name) for tap, names in _STAGES if tap <= self.dims for name in names]

    @property
    def num_features(self) -> int:
        """Feature dimensionality (torchmetrics reads this for custom feature modules)."""
        return self.dims

    def train(self, mode: bool = True) -> InceptionFeatureExtractor:
        """Stay in evaluation mode (batch norm uses the stored statistics)."""
        return super().train(False)

    def forward(self, images: ImageBatch) -> torch.Tensor:
        """(N, dims) float32 features of one uint8 batch, on the extractor's device."""
        batch = as_uint8_images(images).to(self.device)
        with torch.inference_mode():
            x = resize_to_input(batch.to(torch.float32), self.resize)
            x = (x - 128) / 128  # torch-fidelity: the TF graph's (x - 128) * 0.0078125, bit-exact
            for module in self._modules_to_tap:
                x = module(x)
            return F.adaptive_avg_pool2d(x, output_size=(1, 1)).flatten(1).to(torch.float32)

    def extract(
        self,
        images: ImageBatch | Iterable[ImageBatch],
        *,
        batch_size: int = 32,
        on_progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """(N, dims) float32 features of an image array/tensor, or of an iterable of batches (sizes may differ)."""
        if batch_size < 1:
            raise EvaluationInputError("batch_size", f"must be >= 1, got {batch_size}")
        chunks = [self(batch).cpu().numpy() for batch in _batches(images, batch_size, on_progress)]
        if not chunks:
            raise EvaluationInputError("images", "is empty")
        return np.concatenate(chunks, axis=0)


def _batches(
    images: ImageBatch | Iterable[ImageBatch], batch_size: int, on_progress: Callable[[int], None] | None
) -> Iterator[ImageBatch]:
    """Slices of at most ``batch_size`` images; reports each slice's size to ``on_progress`` after it is used."""
    sources: Iterable[ImageBatch] = [images] if isinstance(images, (np.ndarray, torch.Tensor)) else images
    for source in sources:
        for start in range(0, len(source), batch_size):
            chunk = source[start : start + batch_size]
            yield chunk
            if on_progress:
                on_progress(len(chunk))


_extractors: dict[tuple[str, str, int, str, str], InceptionFeatureExtractor] = {}
_extractors_lock = threading.Lock()


def load_feature_extractor(
    weights: InceptionWeights,
    *,
    cache_dir: str | Path,
    dims: FeatureDims = 2048,
    resize: ResizeMode = "bilinear",
    device: str | torch.device = "cpu",
) -> InceptionFeatureExtractor:
    """A process-wide shared extractor per (weights sha256, dims, resize, device): built once, reused."""
    key = (weights.sha256, str(weights.path), int(dims), resize, str(_torch_device(device)))
    with _extractors_lock:
        if key not in _extractors:
            _extractors[key] = InceptionFeatureExtractor(
                weights, cache_dir=cache_dir, dims=dims, resize=resize, device=device
            )
        return _extractors[key]
