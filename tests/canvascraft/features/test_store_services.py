"""Feast on services only: registry and offline parquet under the artifact root on a real loopback S3, online store
in a real Redis. A second "machine" (another home, only service addresses and keys) sees the same store."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

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
from canvascraft.stack.process import free_port
from canvascraft.stack.services import redis_service
from tests.canvascraft.features.test_store import REPO, batch

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs Debian's redis-server (make apt)")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    service = redis_service(Settings(home=tmp_path_factory.mktemp("redis-home"), redis_port=free_port()))
    service.start()
    try:
        yield service.state["url"]
    finally:
        service.stop()


def test_two_homes_share_registry_offline_rows_and_online_store(
    s3_settings: Settings, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FEAST_FS_YAML_FILE_PATH", raising=False)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    creds = s3_settings.s3_credentials()
    root = f"s3://canvascraft-artifacts/t-{uuid.uuid4().hex[:10]}"
    # "machines" that share nothing but the services: explicit endpoint, root and Redis; keys from the environment
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["aws_secret_access_key"])
    machine = {
        "use_embedded": False,
        "s3_endpoint_url": s3_settings.resolved_s3_endpoint_url,
        "artifact_root": root,
        "redis_url": redis_url,
        "feast_repo_path": REPO,
    }
    a = Settings(home=tmp_path / "a", **machine)
    b = Settings(home=tmp_path / "b", **machine)
    assert feast_data_dir(a) == "s3a://" + root[len("s3://") :] + "/feast"

    store_a = open_store(a)
    palettes = PaletteSet((build_palette("image_stats"),))
    apply_definitions(store_a, {"svc": palettes}, feast_data_dir(a))
    images, ids = batch(20, seed=7)
    written = write_new_features(store_a, images, ids, palettes)
    assert written.rows_written == 20 and written.views[0].path.startswith("s3a://")
    assert materialize(store_a, palettes).rows == 20

    store_b = open_store(b)  # a fresh home: everything comes from S3 and Redis
    assert [v.name for v in store_b.list_feature_views()] == [palettes.palettes[0].view_name()]
    assert missing_image_ids(store_b, palettes, ids) == []
    expected = compute_palette_frame(images, ids, palettes).set_index("image_id")
    historical, report = historical_features(store_b, ids[:6], "svc")
    assert report.rows_missing == 0
    pd.testing.assert_frame_equal(historical.set_index("image_id"), expected.loc[ids[:6]], check_index_type=False)
    online, _ = online_features(store_b, ids[:4], "svc")
    pd.testing.assert_frame_equal(online.set_index("image_id"), expected.loc[ids[:4]], check_index_type=False)
    # B adds images; A's next write sees them (no duplicate rows)
    more, more_ids = batch(5, seed=8)
    assert write_new_features(store_b, more, more_ids, palettes).rows_written == 5
    assert write_new_features(store_a, more, more_ids, palettes).rows_written == 0
    # nothing a later run reads was left on either home
    for home in (a.home, b.home):
        assert (
            not list(home.rglob("*.parquet"))
            and not list(home.rglob("registry*"))
            and not list(home.rglob("online.db"))
        )


def test_two_processes_writing_the_shared_registry_at_once_lose_nothing(
    s3_settings: Settings, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A train run and a drift run apply and materialize at the same moment: Feast writes its whole registry from
    each process's cached copy, so without the Redis lock one process's view or materialization is lost."""
    import os
    import subprocess
    import sys

    creds = s3_settings.s3_credentials()
    root = f"s3://canvascraft-artifacts/t-{uuid.uuid4().hex[:10]}"
    project = Path(__file__).resolve().parents[3]
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = []
    for palette in ("image_stats", "rgb_histogram"):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CANVASCRAFT_", "AWS_", "FEAST_"))}
        env.update(
            {
                "CANVASCRAFT_USE_EMBEDDED": "false",
                "CANVASCRAFT_ARTIFACT_ROOT": root,
                "CANVASCRAFT_S3_ENDPOINT_URL": str(s3_settings.resolved_s3_endpoint_url),
                "CANVASCRAFT_REDIS_URL": redis_url,
                "CANVASCRAFT_HOME": str(tmp_path / palette),
                "CANVASCRAFT_FEAST_REPO_PATH": str(REPO),
                "AWS_ACCESS_KEY_ID": creds["aws_access_key_id"],
                "AWS_SECRET_ACCESS_KEY": creds["aws_secret_access_key"],
                "PYTHONPATH": str(project),
            }
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("registry_writer.py")), palette, str(barrier)],
                cwd=project,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        assert out.strip().splitlines()[-1] == "10"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["aws_secret_access_key"])
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    reader = open_store(
        Settings(
            home=tmp_path / "reader",
            use_embedded=False,
            artifact_root=root,
            s3_endpoint_url=s3_settings.resolved_s3_endpoint_url,
            redis_url=redis_url,
            feast_repo_path=REPO,
        )
    )
    views = {v.name: v for v in reader.list_feature_views()}
    assert len(views) == 2, sorted(views)
    assert all(v.materialization_intervals for v in views.values()), {
        n: v.materialization_intervals for n, v in views.items()
    }
