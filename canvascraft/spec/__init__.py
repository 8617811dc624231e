"""The pipeline spec: a versioned YAML document parsed into pydantic models.

Every section is typed; unknown keys and bad values are rejected with the field path and the allowed values.
Component sections (brushes, palettes, trainer) name a registry entry whose own parameter model validates
``params``, so a spec is fully checked before any stage runs.

One module per concept: ``base`` (section base, components, s3:// URIs), ``data`` (data, features),
``training`` (trainer, search space, tuner), ``evaluation`` (evaluator), ``publishing`` (publish, gate),
``drift``, ``notifications``, ``pipeline`` (``PipelineSpec``, ``spec_hash``), ``field_errors`` (error lines),
``components`` (registry checks), ``loading`` (read, parse, load) and ``extra_sources``. Import from here.
"""

from canvascraft.spec.base import ComponentSpec
from canvascraft.spec.components import validate_components
from canvascraft.spec.data import DataSpec, FeaturesSpec, FilterSpec
from canvascraft.spec.drift import DriftSpec, EmbeddingsDriftSpec
from canvascraft.spec.evaluation import EvaluatorSpec
from canvascraft.spec.extra_sources import under_prefix, with_extra_sources
from canvascraft.spec.loading import load_spec, parse_spec, read_spec
from canvascraft.spec.notifications import NOTIFY_EVENTS, NotificationsSpec, NotifyEvent
from canvascraft.spec.pipeline import SPEC_VERSION, PipelineSpec
from canvascraft.spec.publishing import GateSpec, PublishSpec
from canvascraft.spec.training import ResourcesSpec, SearchDimension, TrainerSpec, TunerSpec

__all__ = [
    "NOTIFY_EVENTS",
    "SPEC_VERSION",
    "ComponentSpec",
    "DataSpec",
    "DriftSpec",
    "EmbeddingsDriftSpec",
    "EvaluatorSpec",
    "FeaturesSpec",
    "FilterSpec",
    "GateSpec",
    "NotificationsSpec",
    "NotifyEvent",
    "PipelineSpec",
    "PublishSpec",
    "ResourcesSpec",
    "SearchDimension",
    "TrainerSpec",
    "TunerSpec",
    "load_spec",
    "parse_spec",
    "read_spec",
    "under_prefix",
    "validate_components",
    "with_extra_sources",
]
