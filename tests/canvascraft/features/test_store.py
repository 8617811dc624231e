"""A real local Feast store (file registry, SQLite online, DuckDB offline) in a temp folder: apply, incremental
write, materialize, point-in-time historical and online retrieval, filters and summaries. No mocks.

One store per module (opening and applying costs seconds; ``import feast`` ~15 s cold).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from canvascraft.errors import ParameterError, SettingsError, StorageError
from canvascraft.features.filters import apply_filters, summary_statistics
from canvascraft.features.location import DATA_DIR_ENV, feast_data_dir
from canvascraft.features.materialize import materialize
from canvascraft.features.offline import (
    compute_palette_frame,
    missing_image_ids,
    write_new_features,
)
from canvascraft.features.retrieval import historical_features, online_features
from canvascraft.features.store import apply_definitions, open_store
from canvascraft.palettes import PaletteSet, build_palette
from canvascraft.settings import Settings
from canvascraft.spec import FilterSpec

REPO = Path(__file__).resolve().parents[3] / "feature_repo"
SERVICE = "test-set"


def batch(count: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """Random RGB images and their content ids (sha256 of the uint8 pixels, as ingest keys images by bytes)."""
    images = torch.randint(0, 256, (count, 3, 12, 12), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    ids = [hashlib.sha256(image.numpy().tobytes()).hexdigest() for image in images]
    return images.float() / 255, ids


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Open and apply one store under a temp home; yields the store, its data dir and the palette set."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(DATA_DIR_ENV, raising=False)
        mp.delenv("FEAST_FS_YAML_FILE_PATH", raising=False)
        settings = Settings(home=tmp_path_factory.mktemp("feast-home"), feast_repo_path=REPO)
        store = open_store(settings)
        data_dir = Path(feast_data_dir(settings))
        palettes = build_palette("image_stats") + build_palette("rgb_histogram", {"bins": 4})
        applied = apply_definitions(store, {SERVICE: palettes}, data_dir)
        yield {"store": store, "data_dir": data_dir, "palettes": palettes, "applied": applied, "settings": settings}


def test_open_store_points_every_path_under_the_home(env: dict) -> None:
    store, data_dir = env["store"], env["data_dir"]
    assert data_dir == env["settings"].home / "feast"
    assert store.project == "canvascraft"
    assert store.config.online_store.path == str(data_dir / "online.db")
    assert (data_dir / "registry.db").is_file()
    assert DATA_DIR_ENV not in os.environ  # set only while the yaml is read
    assert env["applied"]["services"] == [SERVICE] and len(env["applied"]["views"]) == 2
    view = store.get_feature_view(env["palettes"].palettes[1].view_name())
    assert [f.name for f in view.features] == list(env["palettes"].palettes[1].feature_names())
    assert view.batch_source.path.startswith(str(data_dir / "offline"))


def test_round_trip_then_rerun_computes_and_writes_nothing(env: dict) -> None:
    store, palettes = env["store"], env["palettes"]
    images, ids = batch(40, seed=0)

    written = write_new_features(store, images, ids, palettes)
    assert (written.images_requested, written.rows_computed, written.rows_written) == (40, 80, 80)
    assert missing_image_ids(store, palettes, ids) == []

    materialized = materialize(store, palettes)
    assert materialized.rows == 80 and {v.rows for v in materialized.views} == {40}

    expected = compute_palette_frame(images, ids, palettes).set_index("image_id")
    order = ids[::-1]  # Feast returns rows in its own order: results must come back in ours
    historical, report = historical_features(store, order, SERVICE)
    assert list(historical["image_id"]) == order and report.rows == 40 and report.rows_missing == 0
    pd.testing.assert_frame_equal(historical.set_index("image_id"), expected.loc[order], check_index_type=False)
    online, report = online_features(store, order[:7], SERVICE)
    assert list(online["image_id"]) == order[:7] and report.rows_missing == 0
    pd.testing.assert_frame_equal(online.set_index("image_id"), expected.loc[order[:7]], check_index_type=False)

    rerun = write_new_features(store, images, ids, palettes)
    assert (rerun.rows_computed, rerun.rows_written) == (0, 0)
    assert all(v.rows_existing == 40 for v in rerun.views)
    assert materialize(store, palettes).rows == 0


def test_only_new_images_are_computed_and_served(env: dict) -> None:
    store, palettes = env["store"], env["palettes"]
    old_images, old_ids = batch(40, seed=0)
    new_images, new_ids = batch(5, seed=1)
    images = torch.cat([new_images[:2], old_images[:10], new_images[2:], new_images[:1]])  # duplicates too
    ids = new_ids[:2] + old_ids[:10] + new_ids[2:] + new_ids[:1]

    write_new_features(store, old_images, old_ids, palettes)  # no-op if the round trip ran first
    assert missing_image_ids(store, palettes, ids) == new_ids
    written = write_new_features(store, images, ids, palettes)
    assert written.images_requested == 15 and written.rows_written == 10
    assert {(v.rows_existing, v.rows_computed) for v in written.views} == {(10, 5)}
    assert materialize(store, palettes).rows == 10

    online, report = online_features(store, [*new_ids, "0" * 64], SERVICE)
    assert report.rows == 6 and report.rows_missing == 1
    expected = compute_palette_frame(new_images, new_ids, palettes)
    assert online["entropy"].dtype == "float32"
    assert online["entropy"][:5].tolist() == expected["entropy"].tolist()


def test_offline_parts_use_microsecond_utc_timestamps(env: dict) -> None:
    images, ids = batch(3, seed=2)
    write_new_features(env["store"], images, ids, env["palettes"])
    parts = sorted((env["data_dir"] / "offline").glob("*/part-*.parquet"))
    assert parts and not list((env["data_dir"] / "offline").glob("*/.*.tmp"))
    schema = pq.read_schema(parts[-1])
    assert str(schema.field("event_timestamp").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("created").type) == "timestamp[us, tz=UTC]"


def test_unknown_ids_come_back_as_missing_rows(env: dict) -> None:
    images, ids = batch(2, seed=3)
    write_new_features(env["store"], images, ids, env["palettes"])
    frame, report = historical_features(env["store"], [ids[0], "f" * 64, ids[1]], SERVICE)
    assert report.rows == 3 and report.rows_missing == 1
    assert frame["brightness"].isna().tolist() == [False, True, False]


def test_errors_name_the_object_and_the_allowed_values(env: dict) -> None:
    store = env["store"]
    with pytest.raises(ParameterError, match=f"unknown feature service 'nope'; allowed values: {SERVICE}"):
        historical_features(store, ["a"], "nope")
    unapplied = PaletteSet((build_palette("rgb_histogram", {"bins": 7}),))
    with pytest.raises(SettingsError, match=r"rgb_histogram_.*is not registered"):
        write_new_features(store, *batch(1, seed=4), unapplied)
    with pytest.raises(ParameterError, match="2 image_ids for 1 images"):
        write_new_features(store, batch(1, seed=4)[0], ["a", "b"], env["palettes"])


def test_historical_needs_offline_rows(env: dict) -> None:
    store = env["store"]
    empty = PaletteSet((build_palette("rgb_histogram", {"bins": 3}),))
    apply_definitions(store, {"empty-set": empty}, env["data_dir"])
    with pytest.raises(StorageError, match="has no offline rows"):
        historical_features(store, ["a"], "empty-set")
    assert materialize(store, empty).skipped == [empty.palettes[0].view_name()]


def test_feast_cli_applies_the_repository(tmp_path: Path) -> None:
    """The repo itself: `feast apply` with only CANVASCRAFT_FEAST_DATA set (env-var expansion in the yaml)."""
    feast = Path(sys.executable).with_name("feast")
    environment = {**os.environ, DATA_DIR_ENV: str(tmp_path / "feast")}
    environment.pop("FEAST_FS_YAML_FILE_PATH", None)
    done = subprocess.run(
        [str(feast), "apply"], cwd=REPO, env=environment, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Created feature service palettes_default" in done.stdout
    assert (tmp_path / "feast" / "registry.db").is_file() and (tmp_path / "feast" / "online.db").is_file()
    assert not (REPO / "${CANVASCRAFT_FEAST_DATA}").exists()


def test_filters_keep_passing_rows_and_count_failures() -> None:
    frame = pd.DataFrame(
        {
            "image_id": list("abcde"),
            "sharpness": [0.0, 0.2, float("nan"), 0.5, 0.9],
            "brightness": [0.5, 0.1, 0.5, 0.5, 0.5],
        }
    )
    kept, report = apply_filters(
        frame,
        [FilterSpec(feature="sharpness", op=">=", value=0.2), FilterSpec(feature="brightness", op=">", value=0.2)],
    )
    assert list(kept["image_id"]) == ["d", "e"]
    assert (report.rows_in, report.rows_kept, report.rows_missing) == (5, 2, 1)
    assert [f.rows_failed for f in report.filters] == [2, 1]
    message = r"filters\[0\].feature: unknown feature 'sharp'; allowed values: sharpness, brightness"
    with pytest.raises(ParameterError, match=message):
        apply_filters(frame, [FilterSpec(feature="sharp", op=">", value=0)])


def test_summary_statistics() -> None:
    frame = pd.DataFrame({"image_id": ["a", "b", "c"], "entropy": [1.0, 2.0, float("nan")]})
    summary = summary_statistics(frame)
    assert list(summary) == ["entropy"]
    assert summary["entropy"]["count"] == 2 and summary["entropy"]["missing"] == 1
    assert summary["entropy"]["mean"] == 1.5 and summary["entropy"]["std"] == 0.5 and summary["entropy"]["max"] == 2.0
