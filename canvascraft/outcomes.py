"""Typed results that cross layers: what each stage of a train run returns, and the run's own result.

Tasks return these models and the flow passes them on as they are; the reports, metrics and notifications read
their fields. A model, unlike a ``dict[str, Any]``, states every field once, so a renamed field fails the type
checker (and ``extra="forbid"`` fails validation) instead of a ``.get(...) or {}`` silently reading nothing. Like
diffusers' ``DDPMSchedulerOutput``: named outputs, not tuples or loose mappings.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from canvascraft.evaluation.score_records import FidScore
from canvascraft.publishing.gate import GateVerdict


class _Outcome(BaseModel):
    """Frozen and closed: a stage's result is a record, never updated after the stage returned it."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class FeaturesOutcome(_Outcome):
    """The features stage: palettes computed for new images, written offline, materialized online (Feast)."""

    feature_service: str | None = Field(default=None, description="Feast feature service (None: no palettes).")
    feature_views: list[str] = Field(default_factory=list)
    images: int = 0
    images_new: int = 0
    rows_computed: int = 0
    rows_written: int = 0
    rows_materialized: int = 0
    materialize_rows_per_second: float = 0.0
    chunks: int = 0
    chunks_computed: int = 0
    seconds: dict[str, float] = Field(default_factory=dict)


class TrainingSelection(_Outcome):
    """The training set: the point-in-time feature join, its drift reference and the images the filters keep."""

    reference_table: str | None = None
    reference_statistics: str | None = None
    reference_uri: str | None = None
    kept_ids_key: str | None = Field(default=None, description="Artifact-root key of the kept ids (None: all kept).")
    rows: int = 0
    rows_missing: int = 0
    kept_image_ids: list[str] = Field(default_factory=list, repr=False)
    kept: int = 0
    dropped: int = 0
    filters: list[dict[str, Any]] = Field(default_factory=list)
    seconds: float = 0.0

    def without_ids(self) -> TrainingSelection:
        """The same record without the id list (a run's result stays small; the ids live under kept_ids_key)."""
        return self.model_copy(update={"kept_image_ids": []})


class ReferenceOutcome(_Outcome):
    """The FID reference stage: whether the statistics were cached, and the chunks computed for them."""

    reference: dict[str, Any]
    found: bool
    chunks: int = 0
    chunks_computed: int = 0
    seconds: float = 0.0


class BestConfig(_Outcome):
    """The best trial's trainer, its resolved parameters and the sampled hyper-parameters."""

    trainer: str
    params: dict[str, Any]
    hp: dict[str, Any] = Field(default_factory=dict)


class TuneOutcome(_Outcome):
    """The Ray Tune search: best checkpoint and config, every trial's row, and what the search cost."""

    best_checkpoint: str
    best_config: BestConfig
    best_metrics: dict[str, float]
    trials: list[dict[str, Any]]
    wall_seconds: float
    tune_overhead_seconds: float
    restored: bool = False
    device_note: str = ""


class Evaluation(_Outcome):
    """The evaluation stage: the best checkpoint's score with its comparability keys and its sample grid."""

    score: FidScore
    grid: str = Field(description="Local path of the sample grid (also logged to MLflow under samples/).")
    n: int


class GateOutcome(_Outcome):
    """What the promotion gate did to one registered version: its verdict and the aliases it now has."""

    version: str
    promoted: bool
    reason: str
    previous_champion: str | None = None
    verdict: GateVerdict
    summary: str
    aliases: list[str] = Field(default_factory=list)


class PublishOutcome(_Outcome):
    """The publish stage: the registered version and the promotion gate's verdict (or why nothing was published)."""

    published: bool
    reason: str
    model: str | None = None
    version: str | None = None
    promoted: bool = False
    previous_champion: str | None = None
    verdict: GateVerdict | None = None
    summary: str = ""
    aliases: list[str] = Field(default_factory=list)
    score: FidScore | None = Field(default=None, description="The candidate's score the gate judged.")

    @classmethod
    def from_gate(cls, model: str, gate: GateOutcome, score: FidScore) -> PublishOutcome:
        """A published version: the gate's outcome for ``model`` and the candidate's score."""
        return cls(
            published=True, model=model, score=score, **gate.model_dump(exclude={"verdict"}), verdict=gate.verdict
        )

    def notification(self) -> dict[str, Any]:
        """The fields a promotion notification sends (model, version, reason, FID, previous champion)."""
        return {
            "model": self.model,
            "version": self.version,
            "reason": self.reason,
            "summary": self.summary,
            "fid": self.score.fid if self.score is not None else None,
            "previous_champion": self.previous_champion,
        }


class RegisteredVersion(_Outcome):
    """One registered version as ``canvascraft models list`` shows it: aliases, score, gate verdict, lineage."""

    version: str
    aliases: list[str]
    score: FidScore | None = None
    gate: GateVerdict | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    run_id: str | None = None


class TrainRunResult(_Outcome):
    """What one run of the train flow returns (and what its completion hook reports and pushes as metrics)."""

    pipeline: str
    dataset_version: str
    valid: int
    quarantined: int
    shards: str = Field(description="Artifact-root key of the preprocessed shard set.")
    images: int
    features: FeaturesOutcome
    training_set: TrainingSelection
    mlflow_run_id: str | None = None
    search: TuneOutcome | None = None
    evaluation: Evaluation | None = None
    publish: PublishOutcome | None = None
