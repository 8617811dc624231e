"""The pipeline spec (the seeds' ``PipelineDefinition``): a versioned YAML document parsed into pydantic models.

Every section is typed; unknown keys and bad values are rejected with the field path and the allowed values.
Component sections (brushes, palettes, trainer) name a registry entry whose own parameter model validates
``params``, so a spec is fully checked before any stage runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from canvascraft.errors import SpecError, UnknownComponentError
from canvascraft.evaluation.score_records import FeatureDims, ResizeMode
from canvascraft.hashing import stable_hash

SPEC_VERSION = 1
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")


class _Section(BaseModel):
    """Base of every spec section: immutable and strict about unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ComponentSpec(_Section):
    """A registry component by name with its parameters (validated by the component's own model)."""

    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class DataSpec(_Section):
    """Where the images come from and what ingest accepts."""

    source: str = Field(description="s3://bucket/prefix of the training images.")
    extra_sources: list[str] = Field(default_factory=list, description="More prefixes ingested with source.")
    min_valid_count: int = Field(default=1, ge=1, description="Fail ingest below this many valid images.")
    min_valid_fraction: float = Field(default=0.5, ge=0.0, le=1.0, description="Fail below this valid share.")
    max_pixels: int = Field(default=4096 * 4096, ge=1, le=20000 * 20000, description="Decompression-bomb guard.")
    max_bytes: int = Field(default=50 * 1024 * 1024, ge=1, description="Largest object accepted, in bytes.")
    min_side: int = Field(default=4, ge=1, le=4096, description="Smallest accepted image side, in pixels.")
    allowed_formats: list[Literal["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"]] = Field(
        default_factory=lambda: ["PNG", "JPEG", "WEBP"]
    )
    allowed_modes: list[Literal["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F"]] = Field(
        default_factory=lambda: ["L", "LA", "P", "RGB", "RGBA"]
    )

    @field_validator("source", "extra_sources")
    @classmethod
    def _s3_uri(cls, value: str | list[str]) -> str | list[str]:
        for uri in [value] if isinstance(value, str) else value:
            if not _S3_URI.match(uri):
                raise ValueError(f"{uri!r} is not an s3://bucket/prefix URI")
        return value


class FilterSpec(_Section):
    """A predicate on one feature used to curate the training set."""

    feature: str
    op: Literal[">=", ">", "<=", "<", "==", "!="]
    value: float


class FeaturesSpec(_Section):
    """Feature palettes served by Feast and optional training-set filters."""

    palettes: list[ComponentSpec] = Field(default_factory=list)
    filters: list[FilterSpec] = Field(default_factory=list)
    image_size: int = Field(default=32, ge=3, le=1024, description="Raw images are resized to this before palettes.")


class SearchDimension(_Section):
    """One hyper-parameter of the trainer's search space."""

    type: Literal["choice", "uniform", "loguniform", "randint"]
    values: list[Any] | None = None
    low: float | None = None
    high: float | None = None


class TrainerSpec(ComponentSpec):
    """The trainer strategy, its fixed parameters and its search space."""

    search_space: dict[str, SearchDimension] = Field(default_factory=dict)


class ResourcesSpec(_Section):
    """Per-trial resources (per worker when ``tuner.workers_per_trial`` > 1); fractional GPUs for one-worker trials."""

    cpu: float = Field(default=1, gt=0, le=256)
    gpu: float = Field(default=0, ge=0, le=16)


class TunerSpec(_Section):
    """Ray Tune search: algorithm, scheduler, budget and per-trial resources."""

    search: Literal["random", "optuna"] = "random"
    scheduler: Literal["fifo", "asha", "hyperband"] = "fifo"
    num_samples: int = Field(default=2, ge=1, le=10000)
    metric: str = "loss"
    mode: Literal["min", "max"] = "min"
    max_concurrent_trials: int | None = Field(default=None, ge=1)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    checkpoint_every: int = Field(default=50, ge=1)
    max_failures: int = Field(default=2, ge=0, le=100)
    workers_per_trial: int = Field(default=1, ge=1, le=64, description="Data-parallel (DDP) Ray Train workers per "
                                   "trial; > 1 makes tuner.resources per worker (see tuning/resources.py).")


class EvaluatorSpec(_Section):
    """FID/KID evaluation settings; scores compare only when these keys match."""

    name: Literal["fid"] = "fid"
    dims: FeatureDims = 2048
    num_samples: int = Field(default=1000, ge=2, le=100000)
    resize: ResizeMode = "bilinear"
    sampling_steps: int = Field(default=50, ge=1, le=1000)
    weights: str | None = Field(default=None, description="Path or s3:// URI of the FID Inception weights.")
    classifier_score: bool = Field(
        default=False, description="Also score the samples with a classifier fitted on the labelled training set: "
                                   "mean top-class probability and class coverage (needs labels).")
    classifier_size: int = Field(default=8, ge=4, le=64, description="Side of the grayscale pixels it classifies.")
    confident: float = Field(default=0.8, gt=0.0, le=1.0,
                             description="Top-class probability that counts a sample as drawn confidently.")


class GateSpec(_Section):
    """Promotion gate: promote when the new score beats the champion's, compared like for like, by ``margin``."""

    metric: Literal["fid", "kid_mean", "classifier_score"] = Field(
        default="fid", description="fid and kid_mean: lower is better; classifier_score: higher is better.")
    margin: float = Field(default=0.0, ge=0.0)
    on_unusable_champion: Literal["promote", "keep"] = Field(
        default="keep", description="When the champion cannot be loaded or sampled for the like-for-like re-score: "
                                    "promote the candidate, or keep the champion (default).")


class PublishSpec(_Section):
    """Where the model is registered and which alias every publish moves."""

    registered_model: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    tag: str = Field(default="candidate", pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$",
                     description="Alias moved to every new version (champion/previous belong to the gate).")
    gate: GateSpec = Field(default_factory=GateSpec)

    @field_validator("tag")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.lower() == "latest":
            raise ValueError("'latest' is reserved by MLflow (models:/NAME/latest always means the newest version); "
                             "pick another alias, e.g. 'candidate'")
        if value in {"champion", "previous"}:
            raise ValueError(f"{value!r} is set by the promotion gate; pick another alias, e.g. 'candidate'")
        return value


class EmbeddingsDriftSpec(_Section):
    """Drift of the Inception pool features (the FID network) of incoming vs reference images (Evidently)."""

    method: Literal["model", "mmd"] = Field(
        default="model", description="Evidently's embeddings drift method: a domain classifier (ROC AUC) or MMD.")
    threshold: float | None = Field(default=None, gt=0, description="Method threshold (model: ROC AUC, default "
                                    "0.55; mmd: quantile probability, default 0.95).")
    dims: FeatureDims = Field(default=64, description="Inception feature block (64: cheapest).")
    resize: ResizeMode = "bilinear"
    max_images: int = Field(default=1000, ge=10, le=100000,
                            description="At most this many images per side (a seeded sample beyond it).")
    weights: str | None = Field(default=None, description="Path or s3:// URI of the Inception weights "
                                "(unset: evaluator.weights, else the offline default).")


class DriftSpec(_Section):
    """Evidently drift settings used by the drift flow."""

    incoming: str | None = Field(default=None, description="s3://bucket/prefix where new images land; a drift "
                                 "retrain may only add sources under it.")
    method: Literal["ks", "wasserstein", "psi", "jensenshannon"] | None = None
    threshold: float | None = Field(default=None, gt=0)
    drift_share: float = Field(default=0.5, gt=0.0, le=1.0)
    embeddings: bool | EmbeddingsDriftSpec = Field(
        default=False, description="true (or settings) adds embeddings drift beside the palette drift.")
    raise_on: Literal["palettes", "embeddings", "any"] = Field(
        default="palettes", description="Which verdict emits the drift event (embeddings needs drift.embeddings).")

    @field_validator("incoming")
    @classmethod
    def _incoming_uri(cls, value: str | None) -> str | None:
        if value is not None and not _S3_URI.match(value):
            raise ValueError(f"{value!r} is not an s3://bucket/prefix URI")
        return value

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
            raise ValueError(f"raise_on {self.raise_on!r} needs drift.embeddings: true; allowed values "
                             "without it: palettes")
        return self


NotifyEvent = Literal["drift_detected", "model_promoted", "rollback", "flow_failure"]
NOTIFY_EVENTS: tuple[str, ...] = get_args(NotifyEvent)


class NotificationsSpec(_Section):
    """Where this pipeline's alerts go: a Prefect notification block by slug, and which events it receives."""

    block: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$",
                              description="Saved notification block TYPE/NAME, e.g. slack-webhook/ml-oncall; "
                                          "unset: the CANVASCRAFT_NOTIFY_* settings decide.")
    events: list[NotifyEvent] = Field(default_factory=lambda: list(NOTIFY_EVENTS))


class PipelineSpec(_Section):
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
        if self.publish is not None and self.publish.gate.metric == "classifier_score" \
                and not self.evaluator.classifier_score:
            raise ValueError("publish.gate.metric: 'classifier_score' needs evaluator.classifier_score: true "
                             "(allowed metrics without it: fid, kid_mean)")
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


def under_prefix(uri: str, prefix: str) -> bool:
    """True when ``uri`` is ``prefix`` or lies below it (``s3://b/in`` holds ``s3://b/in/x``, not ``s3://b/inx``)."""
    return uri.rstrip("/") == prefix.rstrip("/") or uri.startswith(prefix.rstrip("/") + "/")


def with_extra_sources(spec: PipelineSpec, uris: list[str] | None) -> PipelineSpec:
    """The spec with ``uris`` appended to ``data.extra_sources`` (order kept, duplicates and the source dropped).

    A run's extra sources are data from an event or a form, not configuration: each must lie under the spec's
    ``drift.incoming`` prefix, so a drift event can add the new images but never point training elsewhere.
    """
    for uri in uris or []:
        if not spec.drift.incoming:
            raise SpecError(f"extra_sources: {uri!r} is not allowed: spec {spec.name!r} sets no drift.incoming "
                            "prefix; allowed values: none (add sources to data.extra_sources in the spec)")
        if not under_prefix(uri, spec.drift.incoming):
            raise SpecError(f"extra_sources: {uri!r} is not under the spec's drift.incoming prefix; allowed values: "
                            f"{spec.drift.incoming} or a prefix below it")
    wanted = [u for u in dict.fromkeys(uris or []) if u != spec.data.source and u not in spec.data.extra_sources]
    if not wanted:
        return spec
    data = spec.model_dump(mode="json")
    data["data"]["extra_sources"] = [*spec.data.extra_sources, *wanted]
    return parse_spec(data, f"{spec.name} + extra_sources")


def _format_errors(exc: ValidationError, prefix: str, model: type[BaseModel] | None) -> list[str]:
    """Turn pydantic errors into ``field.path: message`` lines that also list allowed keys."""
    lines = []
    for err in exc.errors():
        path = prefix + ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err["loc"]).replace(".[", "[")
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, err["loc"][:-1]) if model else []
            message = f"unknown key; allowed keys: {', '.join(allowed)}"
        elif "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], dict):
            message += f" (got {err['input']!r})"  # a whole section as input says nothing the message does not
        if err["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        lines.append(f"{path}: {message}" if path else message)
    return lines


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model at ``loc``, for unknown-key messages."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        current = _model_in(annotation)
    return sorted(current.model_fields) if current is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel class inside an annotation such as ``list[X]`` or ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def validate_components(spec: PipelineSpec) -> list[str]:
    """Check every component name and its params against its registry; return error lines."""
    from canvascraft.brushes import BRUSHES

    problems: list[str] = []
    sections: list[tuple[str, Any, list[ComponentSpec]]] = [("brushes", BRUSHES, spec.brushes)]
    from canvascraft.palettes import PALETTES

    sections.append(("features.palettes", PALETTES, spec.features.palettes))
    problems.extend(_validate_trainer(spec))
    if spec.tuner.workers_per_trial > 1:
        from canvascraft.tuning.resources import check_workers_per_trial

        problems.extend(check_workers_per_trial(spec))
    for section, registry, components in sections:
        for index, component in enumerate(components):
            where = f"{section}[{index}]"
            try:
                cls = registry.get(component.name)
            except UnknownComponentError as exc:
                problems.append(f"{where}.name: {exc}")
                continue
            try:
                cls.model_validate(component.params)
            except ValidationError as exc:
                problems.extend(_format_errors(exc, f"{where}.params.", cls))
    return problems


def _validate_trainer(spec: PipelineSpec) -> list[str]:
    """The trainer name, its params (its own config model) and that every search dimension is a param."""
    if spec.trainer is None:
        return []
    from canvascraft.trainers import TRAINERS

    try:
        cls = TRAINERS.get(spec.trainer.name)
    except UnknownComponentError as exc:
        return [f"trainer.name: {exc}"]
    fields = cls.config_cls.model_fields
    problems = [
        f"trainer.search_space.{key}: not a parameter of trainer {spec.trainer.name!r}; allowed keys: {', '.join(sorted(fields))}"
        for key in spec.trainer.search_space if key not in fields
    ]
    try:
        cls.config_cls.model_validate(spec.trainer.params)
    except ValidationError as exc:
        problems.extend(_format_errors(exc, "trainer.params.", cls.config_cls))
    return problems


def parse_spec(data: Any, source: str = "<inline>") -> PipelineSpec:
    """Validate a spec mapping; raise SpecError listing every problem with its field path."""
    if not isinstance(data, dict):
        raise SpecError(f"spec {source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"spec {source} is invalid:\n  " + "\n  ".join(_format_errors(exc, "", PipelineSpec))) from None
    problems = validate_components(spec)
    if problems:
        raise SpecError(f"spec {source} is invalid:\n  " + "\n  ".join(problems))
    return spec


def read_spec(spec: str | Path | dict[str, Any]) -> tuple[Any, str]:
    """The unvalidated document of a spec given as a YAML path, a YAML/JSON string or a mapping, and its source."""
    if isinstance(spec, dict):
        return spec, "<inline>"
    text_or_path = str(spec)
    path = Path(text_or_path)
    if "\n" not in text_or_path and path.suffix in {".yaml", ".yml", ".json"}:
        if not path.is_file():
            raise SpecError(f"spec file {text_or_path!r} does not exist")
        return _load_yaml(path.read_text(), text_or_path), text_or_path
    return _load_yaml(text_or_path, "<inline>"), "<inline>"


def load_spec(spec: str | Path | dict[str, Any] | PipelineSpec) -> PipelineSpec:
    """Load a spec from a YAML path, a YAML/JSON string, a mapping or an already parsed spec."""
    if isinstance(spec, PipelineSpec):
        return spec
    return parse_spec(*read_spec(spec))


def _load_yaml(text: str, source: str) -> Any:
    """YAML load that reports the file and line of a syntax error."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"spec {source} is not valid YAML: {exc}") from None
