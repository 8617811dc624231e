"""The records of an evaluation: a classifier score and an FID score, with what decides whether two may be compared.

Plain pydantic models, free of torch: the registry, the gate and the CLI read and compare scores without loading
the code that computes them (scores.py, classifier_score.py). The two closed choices of the FID Inception network,
``FeatureDims`` and ``ResizeMode``, are defined here once and used by the spec, the extractor and the CLI.
"""

from __future__ import annotations

from typing import Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field

from canvascraft.evaluation import EvaluationInputError

SHA256_PATTERN = r"^[0-9a-f]{64}$"

# The FID Inception network's feature taps: the pooled outputs of its first and second max-pools (64, 192), of
# Mixed_6e (768) and of the final pool (2048, the FID of Heusel et al. 2017).
FeatureDims = Literal[64, 192, 768, 2048]
# How images are resized to the network's 299 x 299 input; see ``inception.resize_to_input``.
ResizeMode = Literal["bilinear", "bicubic", "nearest"]
FEATURE_DIMS: tuple[int, ...] = get_args(FeatureDims)
RESIZE_MODES: tuple[str, ...] = get_args(ResizeMode)


def as_feature_dims(value: object, field: str = "dims") -> FeatureDims:
    """``value`` as one of ``FEATURE_DIMS``; anything else is an error naming ``field`` and the allowed values."""
    if isinstance(value, bool) or value not in FEATURE_DIMS:
        raise EvaluationInputError(field, f"got {value!r}", [str(d) for d in FEATURE_DIMS])
    return cast(FeatureDims, FEATURE_DIMS[FEATURE_DIMS.index(value)])  # the canonical int (numpy's 64 -> 64)


def as_resize_mode(value: object, field: str = "resize") -> ResizeMode:
    """``value`` as one of ``RESIZE_MODES``; anything else is an error naming ``field`` and the allowed values."""
    if value not in RESIZE_MODES:
        raise EvaluationInputError(field, f"got {value!r}", RESIZE_MODES)
    return cast(ResizeMode, value)


class ClassifierScore(BaseModel):
    """Mean top-class probability and class coverage of generated images under the training set's classifier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mean_top_probability: float = Field(ge=0.0, le=1.0, description="Mean over samples of max_y p(y|x).")
    coverage: int = Field(ge=0, description="Classes drawn confidently (top probability >= confident).")
    num_classes: int = Field(ge=2, description="Classes the classifier knows.")
    confident: float = Field(gt=0.0, le=1.0, description="Top probability that counts a sample as drawn confidently.")
    n: int = Field(ge=1, description="Generated images scored.")
    classifier_accuracy: float = Field(ge=0.0, le=1.0, description="Held-out accuracy of the classifier.")
    classifier: str = Field(description="Identity of the fitted classifier (training set, size, seed).")
    class_counts: dict[str, int] = Field(default_factory=dict, description="Confident samples per class.")

    def comparability_key(self) -> tuple[Any, ...]:
        """What must match for two classifier scores to be compared: (classifier, confident, n)."""
        return (self.classifier, self.confident, self.n)


class FidScore(BaseModel):
    """One FID (and optional KID) result with everything that decides whether two results may be compared."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fid: float = Field(ge=0.0, description="Squared Fréchet distance between the Inception feature Gaussians.")
    kid_mean: float | None = Field(default=None, description="KID: mean unbiased MMD^2 over subsets (may be < 0).")
    kid_std: float | None = Field(default=None, ge=0.0, description="KID standard deviation over subsets.")
    n: int = Field(ge=2, description="Generated images scored.")
    n_real: int | None = Field(default=None, ge=2, description="Reference images behind the real statistics.")
    dims: FeatureDims
    weights_sha256: str = Field(pattern=SHA256_PATTERN, description="sha256 of the Inception weights file used.")
    resize: ResizeMode
    reference: str | None = Field(default=None, description="Reference dataset version, when known.")
    kid_subset_size: int | None = Field(
        default=None, ge=2, description="KID subset size used (not a comparability key)."
    )
    classifier: ClassifierScore | None = Field(
        default=None, description="The samples under the training set's classifier (evaluator.classifier_score)."
    )

    def comparability_key(self) -> tuple[Any, ...]:
        """What must be equal for two scores to be compared: (n, n_real, dims, weights_sha256, resize, reference,
        classifier key or None)."""
        classifier = self.classifier.comparability_key() if self.classifier is not None else None
        return (self.n, self.n_real, self.dims, self.weights_sha256, self.resize, self.reference, classifier)

    def incomparable_fields(self, other: FidScore) -> dict[str, tuple[Any, Any]]:
        """Fields of the comparability key that differ, as ``{field: (self, other)}`` (empty when comparable)."""
        names = ("n", "n_real", "dims", "weights_sha256", "resize", "reference", "classifier")
        return {
            name: (mine, theirs)
            for name, mine, theirs in zip(names, self.comparability_key(), other.comparability_key(), strict=True)
            if mine != theirs
        }

    def comparable_with(self, other: FidScore) -> bool:
        """True when both scores were computed with the same counts, dims, weights, resize, reference and classifier."""
        return self.comparability_key() == other.comparability_key()

    def metric(self, name: str) -> float | None:
        """The value of a gate metric: ``fid``, ``kid_mean`` or ``classifier_score`` (mean top-class probability)."""
        if name == "classifier_score":
            return self.classifier.mean_top_probability if self.classifier is not None else None
        if name in ("fid", "kid_mean"):
            return getattr(self, name)
        raise EvaluationInputError("metric", f"got {name!r}", GATE_METRICS)


GateMetric = Literal["fid", "kid_mean", "classifier_score"]
GATE_METRICS: tuple[str, ...] = ("fid", "kid_mean", "classifier_score")
HIGHER_IS_BETTER = frozenset({"classifier_score"})  # FID and KID are distances: lower is better
