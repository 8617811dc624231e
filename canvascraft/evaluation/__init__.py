"""FID/KID evaluation core: Fréchet and kernel distances, the FID Inception network and comparable scores.

Pure code (no Prefect). Modules: ``frechet`` (Gaussian statistics, Fréchet distance), ``kid`` (kernel
inception distance), ``inception_weights`` (weights location, sha256), ``inception_names`` (TF-to-torch name map),
``inception`` (feature extraction), ``score_records`` (``FidScore``, ``ClassifierScore``, ``FeatureDims``,
``ResizeMode``; torch-free), ``scores`` (reference-statistics cache, ``score_images``). Submodules are imported
explicitly: importing this package does not import torch.
"""

from __future__ import annotations

from collections.abc import Iterable

from canvascraft.errors import CanvasCraftError


class EvaluationError(CanvasCraftError):
    """FID/KID evaluation got unusable inputs or settings."""


class EvaluationInputError(EvaluationError):
    """An argument of an evaluation function has the wrong shape, dtype or value."""

    def __init__(self, field: str, problem: str, allowed: Iterable[str] | str | None = None) -> None:
        self.field, self.problem = field, problem
        self.allowed = allowed if isinstance(allowed, str) or allowed is None else ", ".join(str(a) for a in allowed)
        suffix = f"; allowed: {self.allowed}" if self.allowed else ""
        super().__init__(f"{field}: {problem}{suffix}")


class InceptionWeightsError(EvaluationError):
    """The FID Inception weights could not be found, fetched or loaded."""
