"""The root of a spec: ``PipelineSpec`` (every section, cross-section rules) and its content hash."""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

from pydantic import Field, model_validator

from canvascraft.hashing import stable_hash
from canvascraft.spec.base import ComponentSpec, SpecSection
from canvascraft.spec.data import DataSpec, FeaturesSpec
from canvascraft.spec.drift import DriftSpec
from canvascraft.spec.evaluation import EvaluatorSpec
from canvascraft.spec.notifications import NotificationsSpec
from canvascraft.spec.publishing import PublishSpec
from canvascraft.spec.training import TrainerSpec, TunerSpec

SPEC_VERSION: Final = 1


class PipelineSpec(SpecSection):
    """A whole training pipeline: name, device, data, brushes, palettes, trainer, tuner, evaluator, publish."""

    version: Literal[1] = SPEC_VERSION
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9\-_]*$")
    description: str = ""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    data: DataSpec
    brushes: list[ComponentSpec] = Field(default_factory=list)
    features: FeaturesSpec = Field(default_factory=FeaturesSpec)
    trainer: TrainerSpec | None = None
    tuner: TunerSpec = Field(default_factory=TunerSpec)
    evaluator: EvaluatorSpec = Field(default_factory=EvaluatorSpec)
    publish: PublishSpec | None = None
    drift: DriftSpec = Field(default_factory=DriftSpec)
    notifications: NotificationsSpec = Field(default_factory=NotificationsSpec)

    NOT_HASHED: ClassVar[set[str]] = {"notifications"}
    # Fields added after specs were first hashed: left out while at their default, so older specs keep their hash
    # (lineage tags, and the Tune experiment name a crashed search resumes under).
    HASHED_IF_NOT_DEFAULT: ClassVar[dict[tuple[str, str], Any]] = {("tuner", "workers_per_trial"): 1}

    @model_validator(mode="after")
    def _gate_metric_is_evaluated(self) -> PipelineSpec:
        if (
            self.publish is not None
            and self.publish.gate.metric == "classifier_score"
            and not self.evaluator.classifier_score
        ):
            raise ValueError(
                "publish.gate.metric: 'classifier_score' needs evaluator.classifier_score: true "
                "(allowed metrics without it: fid, kid_mean)"
            )
        return self

    def spec_hash(self) -> str:
        """Content hash of what produces the model (lineage tag, Tune experiment name).

        ``notifications`` is left out: where alerts go changes neither the data nor the model, so re-routing them
        must not turn a resumable search into a new one.
        """
        data = self.model_dump(mode="json", exclude=self.NOT_HASHED)
        for (section, key), default in self.HASHED_IF_NOT_DEFAULT.items():
            if data[section][key] == default:
                del data[section][key]
        return stable_hash(data)
