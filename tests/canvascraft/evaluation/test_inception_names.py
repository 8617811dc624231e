"""The TF-to-torch name map: it places every tensor of the TorchScript graph and fills every torch-fidelity slot."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from canvascraft.evaluation.inception import (
    InceptionWeights,
    torch_fidelity_weights_path,
)
from canvascraft.evaluation.inception_names import (
    CONV_NAMES,
    TS_PARTS,
    TS_PREFIX,
    torchscript_to_state_dict,
)


def _torchscript_names(path: Path) -> set[str]:
    """Tensor names of the TorchScript archive, without its common prefix."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path), map_location="cpu")
    names = set(module.state_dict())
    assert all(name.startswith(TS_PREFIX) for name in names)
    return {name.removeprefix(TS_PREFIX) for name in names}


def test_map_covers_every_torchscript_tensor(fid_weights: InceptionWeights) -> None:
    """Each (conv unit, part) the map names exists in default_1.pt, and the archive holds nothing else."""
    mapped = {f"{src}.{part}" for src in CONV_NAMES for part in TS_PARTS}
    assert len(CONV_NAMES) == 94 and len(set(CONV_NAMES.values())) == 94  # one-to-one
    assert mapped == _torchscript_names(fid_weights.path)


def test_converted_layout_is_exactly_torch_fidelitys(fid_weights: InceptionWeights, fid_cache_dir: Path) -> None:
    """The converted state dict has every parameter and buffer of FeatureExtractorInceptionV3, with their shapes."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    converted = torchscript_to_state_dict(fid_weights.path)
    network = FeatureExtractorInceptionV3(
        "inception-v3-compat",
        ["2048"],
        feature_extractor_weights_path=str(torch_fidelity_weights_path(fid_weights, fid_cache_dir)),
    )
    expected = network.state_dict()
    assert set(converted) == set(expected)
    assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape) for k, v in expected.items()}
    # the TF graph's batch norm has no scale: gamma is 1; its shift is the TorchScript beta
    assert torch.equal(converted["Mixed_6a.branch3x3.bn.weight"], torch.ones(384))
    assert torch.isnan(converted["fc.weight"]).all()  # no classifier head in default_1.pt
