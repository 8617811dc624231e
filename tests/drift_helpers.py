"""Test data for drift: digits in S3 (optionally inverted), a champion whose reference the train-flow code wrote."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from canvascraft.datasets.seed import _png, upload_samples
from canvascraft.settings import Settings
from canvascraft.spec import PipelineSpec


def digit_samples(start: int, stop: int, invert: bool = False) -> Iterator[tuple[str, str, bytes]]:
    """scikit-learn digits ``start:stop`` as PNG samples; ``invert`` turns ink white-on-black into black-on-white."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    for index in range(start, stop):
        pixels = np.round(bunch.images[index] * (255.0 / 16.0)).astype(np.uint8)
        yield f"{index:05d}.png", str(int(bunch.target[index])), _png(255 - pixels if invert else pixels)


def seed_digits(client: Any, dest: str, start: int, stop: int, invert: bool = False) -> None:
    """Upload digits ``start:stop`` under ``dest``."""
    upload_samples(digit_samples(start, stop, invert), client, dest)


def drift_spec(bucket: str, name: str, model: str, **drift: Any) -> dict[str, Any]:
    """A small spec with palettes, a publish target and drift settings (no trainer: the train flow stops early)."""
    return {
        "name": name,
        "seed": 1,
        "data": {"source": f"s3://{bucket}/reference", "min_valid_count": 10},
        "brushes": [{"name": "resize", "params": {"size": 8}}, {"name": "grayscale"}],
        "features": {
            "palettes": [{"name": "image_stats"}, {"name": "rgb_histogram", "params": {"bins": 4}}],
            "image_size": 16,
        },
        "publish": {"registered_model": model, "tag": "candidate"},
        "drift": {"method": "ks", "threshold": 0.01, "drift_share": 0.5, **drift},
    }


def make_champion(spec: PipelineSpec, settings: Settings, client: Any) -> str:
    """Ingest the spec's source, write its features and reference table as the train flow does, register @champion.

    Returns the reference dataset version. The model version's source is a placeholder folder: drift only reads
    the version's ``dataset_version`` tag.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from canvascraft import tracking
    from canvascraft.features.stage import build_training_set, materialize_snapshot
    from canvascraft.ingest import ImageRules, SnapshotManifest, ingest

    report = ingest([spec.data.source], client, settings.home / "cache", ImageRules.from_spec(spec.data))
    manifest = SnapshotManifest.load(report.manifest_path)
    materialize_snapshot(manifest, spec, settings)
    build_training_set(manifest, spec, settings)
    tracking.configure(settings)
    mlflow = MlflowClient()
    name = spec.publish.registered_model
    with contextlib.suppress(MlflowException):  # may exist already; a new version is added either way
        mlflow.create_registered_model(name)
    source = settings.home / "placeholder-model"
    source.mkdir(parents=True, exist_ok=True)
    version = mlflow.create_model_version(
        name, source=str(source), tags={"dataset_version": report.dataset_version, "pipeline": spec.name}
    )
    mlflow.set_registered_model_alias(name, "champion", version.version)
    return report.dataset_version


def drift_events(resource_id: str, wait: float) -> list[Any]:
    """``canvascraft.drift.detected`` events of one pipeline, polling up to ``wait`` seconds for at least one."""
    from prefect import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    deadline = time.monotonic() + wait
    while True:
        with get_client(sync_client=True) as client:  # the server caps limit at 50 (the client defaults to 100)
            page = client.read_events(
                EventFilter(
                    event=EventNameFilter(name=["canvascraft.drift.detected"]),
                    resource=EventResourceFilter(id=[resource_id]),
                ),
                limit=50,
            )
        if page.events or time.monotonic() > deadline:
            return page.events
        time.sleep(0.5)
