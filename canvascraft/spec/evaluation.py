"""The evaluator section: FID/KID settings (and the optional classifier score) whose keys make scores comparable."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from canvascraft.evaluation.score_records import FeatureDims, ResizeMode
from canvascraft.spec.base import SpecSection


class EvaluatorSpec(SpecSection):
    """FID/KID evaluation settings; scores compare only when these keys match."""

    name: Literal["fid"] = "fid"
    dims: FeatureDims = 2048
    num_samples: int = Field(default=1000, ge=2, le=100000)
    resize: ResizeMode = "bilinear"
    sampling_steps: int = Field(default=50, ge=1, le=1000)
    weights: str | None = Field(default=None, description="Path or s3:// URI of the FID Inception weights.")
    classifier_score: bool = Field(
        default=False,
        description="Also score the samples with a classifier fitted on the labelled training set: "
        "mean top-class probability and class coverage (needs labels).",
    )
    classifier_size: int = Field(default=8, ge=4, le=64, description="Side of the grayscale pixels it classifies.")
    confident: float = Field(
        default=0.8, gt=0.0, le=1.0, description="Top-class probability that counts a sample as drawn confidently."
    )
