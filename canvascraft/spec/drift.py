"""The drift section: Evidently palette drift, optional embeddings drift and which verdict raises the event."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from canvascraft.evaluation.score_records import FeatureDims, ResizeMode
from canvascraft.spec.base import SpecSection, require_s3_uri


class EmbeddingsDriftSpec(SpecSection):
    """Drift of the Inception pool features (the FID network) of incoming vs reference images (Evidently)."""

    method: Literal["model", "mmd"] = Field(
        default="model", description="Evidently's embeddings drift method: a domain classifier (ROC AUC) or MMD."
    )
    threshold: float | None = Field(
        default=None,
        gt=0,
        description="Method threshold (model: ROC AUC, default 0.55; mmd: quantile probability, default 0.95).",
    )
    dims: FeatureDims = Field(default=64, description="Inception feature block (64: cheapest).")
    resize: ResizeMode = "bilinear"
    max_images: int = Field(
        default=1000, ge=10, le=100000, description="At most this many images per side (a seeded sample beyond it)."
    )
    weights: str | None = Field(
        default=None,
        description="Path or s3:// URI of the Inception weights (unset: evaluator.weights, else the offline default).",
    )


class DriftSpec(SpecSection):
    """Evidently drift settings used by the drift flow."""

    incoming: str | None = Field(
        default=None,
        description="s3://bucket/prefix where new images land; a drift retrain may only add sources under it.",
    )
    method: Literal["ks", "wasserstein", "psi", "jensenshannon"] | None = None
    threshold: float | None = Field(default=None, gt=0)
    drift_share: float = Field(default=0.5, gt=0.0, le=1.0)
    embeddings: bool | EmbeddingsDriftSpec = Field(
        default=False, description="true (or settings) adds embeddings drift beside the palette drift."
    )
    raise_on: Literal["palettes", "embeddings", "any"] = Field(
        default="palettes", description="Which verdict emits the drift event (embeddings needs drift.embeddings)."
    )

    @field_validator("incoming")
    @classmethod
    def _incoming_uri(cls, value: str | None) -> str | None:
        return None if value is None else require_s3_uri(value)

    @property
    def embeddings_spec(self) -> EmbeddingsDriftSpec | None:
        """The embeddings drift settings when enabled (``true`` means the defaults), else None."""
        if self.embeddings is True:
            return EmbeddingsDriftSpec()
        return self.embeddings or None

    @model_validator(mode="after")
    def _raise_on_needs_embeddings(self) -> DriftSpec:
        """``raise_on`` may name embeddings only when embeddings drift is on."""
        if self.raise_on in ("embeddings", "any") and self.embeddings_spec is None:
            raise ValueError(
                f"raise_on {self.raise_on!r} needs drift.embeddings: true; allowed values without it: palettes"
            )
        return self
