"""Palettes per content-defined chunk on a real local Feast store: the same values as one batch over every image,
and a new image computes one chunk. Real digits PNGs decoded from a real object cache; no mocks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from canvascraft import pieces
from canvascraft.features.definitions import palette_set_for
from canvascraft.features.location import DATA_DIR_ENV
from canvascraft.features.offline import part_files, view_folder
from canvascraft.features.palette_chunks import compute_palette_frame, load_palette_images
from canvascraft.features.stage import materialize_snapshot, plan_palettes
from canvascraft.features.store import open_store
from canvascraft.hashing import sha256_bytes
from canvascraft.ingest.cache import ObjectCache
from canvascraft.ingest.manifest import ManifestEntry, SnapshotManifest
from canvascraft.settings import Settings
from canvascraft.spec import load_spec
from tests.drift_helpers import digit_samples

REPO = Path(__file__).resolve().parents[3] / "feature_repo"
SPEC = load_spec(
    {
        "name": "chunks",
        "data": {"source": "s3://bkt/digits"},
        "features": {
            "palettes": [{"name": "image_stats"}, {"name": "rgb_histogram", "params": {"bins": 4, "image_size": 8}}],
            "image_size": 16,
        },
    }
)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A fresh home (object cache + Feast data) and chunks of 4..16 digits, so 40 digits make several chunks."""
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.delenv("FEAST_FS_YAML_FILE_PATH", raising=False)
    monkeypatch.setattr(pieces, "MIN_SIZE", 4)
    monkeypatch.setattr(pieces, "DIVISOR", 8)
    monkeypatch.setattr(pieces, "MAX_SIZE", 16)
    yield Settings(home=tmp_path / "home", feast_repo_path=REPO)


def manifest_of(settings: Settings, indices: list[int]) -> SnapshotManifest:
    """Digits ``indices`` stored in the home's object cache, as a manifest (entries in the given order)."""
    cache = ObjectCache(settings.home / "cache")
    entries = []
    for index in indices:
        name, label, data = next(digit_samples(index, index + 1))
        sha = sha256_bytes(data)
        cache.put(sha, data)
        entries.append(
            ManifestEntry(
                uri=f"s3://bkt/digits/{name}",
                key=f"digits/{name}",
                etag=sha[:32],
                sha256=sha,
                size=len(data),
                label=label,
                width=8,
                height=8,
                mode="L",
            )
        )
    return SnapshotManifest(sources=["s3://bkt/digits"], entries=entries)


def offline_rows(settings: Settings) -> dict[str, pd.DataFrame]:
    """Every offline row of each view of the spec, indexed by image id."""
    store = open_store(settings)
    frames = {}
    for palette in palette_set_for(SPEC):
        fs, parts = part_files(view_folder(store, palette))
        frame = pd.concat([pd.read_parquet(fs.open(p)) for p in parts])
        frames[palette.view_name()] = frame.set_index("image_id").sort_index()
    return frames


def test_chunked_palettes_equal_one_batch_over_every_image(settings: Settings) -> None:
    manifest = manifest_of(settings, list(range(40)))
    done = materialize_snapshot(manifest, SPEC, settings)
    assert done.chunks >= 3 and done.chunks_computed == done.chunks  # several chunks, all computed
    assert done.images_new == 40 and done.rows_written == 80 and done.rows_materialized == 80

    cache = ObjectCache(settings.home / "cache")
    ids = [e.sha256 for e in manifest.entries]
    paths = [cache.object_path(i) for i in ids]
    stored = offline_rows(settings)
    for palette in palette_set_for(SPEC):  # one batch of all 40 images, each palette at its own size
        expected = compute_palette_frame(load_palette_images(paths, palette.image_size), ids, palette)
        got = stored[palette.view_name()]
        assert len(got) == 40 and got.index.is_unique
        expected = expected.set_index("image_id").sort_index()
        columns = list(palette.feature_names())
        np.testing.assert_allclose(got[columns].to_numpy(), expected[columns].to_numpy(), rtol=1e-6, atol=1e-7)
    parts = [len(part_files(view_folder(open_store(settings), p))[1]) for p in palette_set_for(SPEC)]
    assert parts == [1, 1]  # one writer: one part file per view, however many chunks


def test_a_new_image_computes_one_chunk(settings: Settings) -> None:
    first = manifest_of(settings, list(range(40)))
    before = plan_palettes(first, SPEC, settings)
    materialize_snapshot(first, SPEC, settings)

    grown = manifest_of(settings, [*range(20), 100, *range(20, 40)])  # one new digit in the middle
    plan = plan_palettes(grown, SPEC, settings)
    new_keys = {c.key for c in plan.chunks} - {c.key for c in before.chunks}
    assert len(new_keys) == 1  # content-defined chunks: only the chunk holding the new image changed
    assert [c.missing for c in plan.chunks if c.missing] == [[grown.entries[20].sha256]]

    done = materialize_snapshot(grown, SPEC, settings)
    assert (done.chunks_computed, done.images_new, done.rows_written) == (1, 1, 2)
    again = materialize_snapshot(grown, SPEC, settings)
    assert (again.chunks_computed, again.images_new, again.rows_written) == (0, 0, 0)
