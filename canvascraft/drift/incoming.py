"""New images of an S3 prefix: ingest into the cache (the usual validation), then the spec's palettes per image."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from canvascraft.artifact_root import artifact_root
from canvascraft.ingest import ImageRules, IngestReport, ingest
from canvascraft.ingest.cache import ObjectCache
from canvascraft.ingest.manifest import SnapshotManifest
from canvascraft.palettes import PaletteSet
from canvascraft.settings import Settings
from canvascraft.spec import PipelineSpec
from canvascraft.storage import make_s3_client

JOIN_KEY = "image_id"


def palette_frame(palette_set: PaletteSet, paths: dict[str, Path]) -> pd.DataFrame:
    """``image_id`` plus every palette column, raw images loaded once per palette resolution."""
    from canvascraft.features.stage import load_palette_images

    ids = list(paths)
    frame = pd.DataFrame({JOIN_KEY: pd.array(ids, dtype="string")})
    for size in sorted({p.image_size for p in palette_set}):
        group = PaletteSet([p for p in palette_set if p.image_size == size])
        images = load_palette_images([paths[i] for i in ids], size)
        for column, values in group.compute(images, batch_size=512).items():
            frame[column] = values.numpy()
    return frame


def ingest_incoming(spec: PipelineSpec, settings: Settings, uri: str) -> tuple[IngestReport, dict[str, Path]]:
    """Ingest ``uri`` with the spec's image rules (at least one valid image): the report and ``{sha256: file}``."""
    report = ingest(
        [uri],
        make_s3_client(settings),
        settings.home / "cache",
        ImageRules.from_spec(spec.data),
        min_valid_count=1,
        min_valid_fraction=spec.data.min_valid_fraction,
        max_workers=settings.s3_max_concurrency,
        artifacts=artifact_root(settings),
    )
    manifest = SnapshotManifest.load(report.manifest_path)  # written by this very ingest, on this machine
    cache = ObjectCache(settings.home / "cache")
    return report, {i: cache.object_path(i) for i in dict.fromkeys(e.sha256 for e in manifest.entries)}
