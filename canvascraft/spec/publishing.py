"""The publish section: the registered model, the alias every publish moves and the promotion gate."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from canvascraft.spec.base import SpecSection

GateMetric = Literal["fid", "kid_mean", "classifier_score"]


class GateSpec(SpecSection):
    """Promotion gate: promote when the new score beats the champion's, compared like for like, by ``margin``."""

    metric: GateMetric = Field(
        default="fid", description="fid and kid_mean: lower is better; classifier_score: higher is better."
    )
    margin: float = Field(default=0.0, ge=0.0)
    on_unusable_champion: Literal["promote", "keep"] = Field(
        default="keep",
        description="When the champion cannot be loaded or sampled for the like-for-like re-score: "
        "promote the candidate, or keep the champion (default).",
    )


class PublishSpec(SpecSection):
    """Where the model is registered and which alias every publish moves."""

    registered_model: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    tag: str = Field(
        default="candidate",
        pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$",
        description="Alias moved to every new version (champion/previous belong to the gate).",
    )
    gate: GateSpec = Field(default_factory=GateSpec)

    @field_validator("tag")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.lower() == "latest":
            raise ValueError(
                "'latest' is reserved by MLflow (models:/NAME/latest always means the newest version); "
                "pick another alias, e.g. 'candidate'"
            )
        if value in {"champion", "previous"}:
            raise ValueError(f"{value!r} is set by the promotion gate; pick another alias, e.g. 'candidate'")
        return value
