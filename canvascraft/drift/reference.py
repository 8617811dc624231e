"""Locate the drift reference: champion of ``publish.registered_model`` -> its ``dataset_version`` tag -> table."""

from __future__ import annotations

from pydantic import BaseModel

from canvascraft.artifact_root import artifact_root
from canvascraft.errors import DriftError
from canvascraft.palettes import PaletteSet
from canvascraft.settings import Settings
from canvascraft.spec import PipelineSpec

CHAMPION = "champion"  # canvascraft.publishing.model_registry.CHAMPION
DATASET_TAG = "dataset_version"
TABLE = "features.parquet"
STATISTICS = "statistics.json"


class ReferenceLocation(BaseModel):
    """The champion version whose training data is the reference, and where its feature table is."""

    model: str
    version: str
    dataset_version: str
    table: str


def palette_set_of(spec: PipelineSpec) -> PaletteSet:
    """The spec's palettes at ``features.image_size`` (as ``features.definitions.palette_set_for``, without Feast)."""
    return PaletteSet.from_spec(
        [
            {"name": c.name, "params": {"image_size": spec.features.image_size, **c.params}}
            for c in spec.features.palettes
        ]
    )


def reference_key(dataset_version: str, palette_set: PaletteSet) -> str:
    """Artifact-root key of a reference folder: ``references/<dataset_version>/<palette set hash>``.

    Keyed by what produced it (the snapshot and the palettes), written by the train flow's training-set task.
    """
    return f"references/{dataset_version}/{palette_set.set_hash()}"


def locate_reference(spec: PipelineSpec, settings: Settings) -> ReferenceLocation:
    """The champion's reference table; errors name what is missing (publish section, alias, tag or file)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from canvascraft import tracking

    if spec.publish is None:
        raise DriftError(
            f"spec {spec.name!r}: publish.registered_model is not set; drift compares against the "
            "champion of that model, so the spec needs a publish section"
        )
    if not spec.features.palettes:
        raise DriftError(f"spec {spec.name!r}: features.palettes is empty; drift compares palette features")
    name = spec.publish.registered_model
    tracking.configure(settings)
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        try:
            aliases = sorted(client.get_registered_model(name).aliases)
        except MlflowException:
            raise DriftError(
                f"registered model {name!r} (spec publish.registered_model) does not exist at "
                f"{settings.resolved_mlflow_tracking_uri}; train and publish it first"
            ) from None
        raise DriftError(
            f"registered model {name!r} has no @{CHAMPION} version (aliases: "
            f"{', '.join(aliases) or 'none'}); promote one with `canvascraft models promote`"
        ) from None
    dataset_version = version.tags.get(DATASET_TAG)
    if not dataset_version:
        raise DriftError(
            f"{name} v{version.version} (@{CHAMPION}) has no {DATASET_TAG!r} tag; "
            "it was not published by the train flow"
        )
    artifacts = artifact_root(settings)
    key = reference_key(dataset_version, palette_set_of(spec))
    folder = artifacts.folder(key)
    if folder is None:
        raise DriftError(
            f"reference table {artifacts.uri(key)} of dataset version {dataset_version} ({name} "
            f"v{version.version} @{CHAMPION}) does not exist in the artifact root; the train flow's "
            "training-set task writes it (same palettes and image_size as this spec)"
        )
    return ReferenceLocation(
        model=name, version=str(version.version), dataset_version=dataset_version, table=str(folder / TABLE)
    )
