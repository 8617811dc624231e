"""Feast's online store in a real Redis (Debian's redis-server on loopback), as every worker of a pool shares it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from canvascraft.errors import SettingsError
from canvascraft.features.location import DATA_DIR_ENV, feast_data_dir
from canvascraft.features.materialize import materialize
from canvascraft.features.offline import compute_palette_frame, write_new_features
from canvascraft.features.retrieval import online_features
from canvascraft.features.store import (
    apply_definitions,
    feast_redis_connection,
    open_store,
)
from canvascraft.palettes import PaletteSet, build_palette
from canvascraft.settings import Settings
from canvascraft.stack.process import free_port
from canvascraft.stack.services import redis_service
from tests.canvascraft.features.test_store import REPO, batch

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs Debian's redis-server (make apt)")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("redis-home")
    service = redis_service(Settings(home=home, redis_port=free_port()))
    service.start()
    try:
        yield service.state["url"]
    finally:
        service.stop()


def test_online_features_round_trip_through_redis(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.delenv("FEAST_FS_YAML_FILE_PATH", raising=False)
    settings = Settings(home=tmp_path, feast_repo_path=REPO, redis_url=redis_url, use_embedded=False)
    store = open_store(settings)
    assert store.config.online_store.type == "redis"
    assert not (Path(feast_data_dir(settings)) / "online.db").exists()
    palettes = PaletteSet((build_palette("image_stats"),))
    apply_definitions(store, {"redis-set": palettes}, feast_data_dir(settings))
    images, ids = batch(12, seed=4)
    write_new_features(store, images, ids, palettes)
    assert materialize(store, palettes).rows == 12
    # a second store object (another worker's view of the same services) reads the rows back from Redis
    online, report = online_features(open_store(settings), ids[:5], "redis-set")
    expected = compute_palette_frame(images, ids, palettes).set_index("image_id")
    assert report.rows_missing == 0
    pd.testing.assert_frame_equal(online.set_index("image_id"), expected.loc[ids[:5]], check_index_type=False)


def test_redis_url_is_validated() -> None:
    assert feast_redis_connection("redis://:pw@cache:6380/2") == "cache:6380,db=2,password=pw"
    assert feast_redis_connection("rediss://cache") == "cache:6379,db=0,ssl=true"
    with pytest.raises(SettingsError, match="allowed schemes: redis, rediss"):
        feast_redis_connection("http://:secret@cache:6379")
