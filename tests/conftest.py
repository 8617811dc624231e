"""Shared fixtures: one real S3 server (rclone over a temp folder) and one Prefect test harness per session."""

from __future__ import annotations

import io
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Prefect reads its settings at import: isolate it before anything imports prefect.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="canvascraft-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_DIR / "prefect")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ["CANVASCRAFT_HOME"] = str(_SESSION_DIR / "home")
for _var in ("CANVASCRAFT_S3_ENDPOINT_URL", "CANVASCRAFT_MLFLOW_TRACKING_URI", "CANVASCRAFT_RAY_ADDRESS"):
    os.environ.pop(_var, None)
# Flow runs push metrics: never to a developer's running Pushgateway (tests that check pushes start their own).
os.environ["CANVASCRAFT_PUSHGATEWAY_URL"] = "127.0.0.1:9"  # discard port: nothing listens, the push fails fast
for _var in ("CANVASCRAFT_NOTIFY_BLOCK", "CANVASCRAFT_NOTIFY_SECRET_BLOCK", "CANVASCRAFT_NOTIFY_WEBHOOK_URL"):
    os.environ.pop(_var, None)

from canvascraft.artifact_root import ArtifactRoot, storage_options  # noqa: E402
from canvascraft.settings import Settings, get_settings  # noqa: E402
from canvascraft.stack.process import free_port  # noqa: E402
from canvascraft.stack.s3_server import ARTIFACT_BUCKET, s3_service  # noqa: E402
from canvascraft.storage import make_s3_client  # noqa: E402


@pytest.fixture(scope="session")
def session_dir() -> Path:
    """Temp folder shared by the whole session."""
    return _SESSION_DIR


@pytest.fixture(scope="session")
def s3_settings() -> Iterator[Settings]:
    """A real S3-compatible server (rclone serve s3) on a free loopback port, stopped at the end."""
    os.environ["CANVASCRAFT_S3_PORT"] = str(free_port())
    settings = get_settings()
    service = s3_service(settings)
    service.start()
    try:
        yield get_settings()
    finally:
        service.stop()


@pytest.fixture(scope="session")
def s3_client(s3_settings: Settings):
    """A boto3 client configured exactly as the product configures it."""
    return make_s3_client(s3_settings)


@pytest.fixture
def bucket(s3_client) -> str:
    """A fresh, empty bucket for one test."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


def png_bytes(
    size: tuple[int, int] = (16, 16), color: int | tuple[int, ...] = 128, mode: str = "L", fmt: str = "PNG"
) -> bytes:
    """Encode a flat image (test data helper)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def truncated_png() -> bytes:
    """A noisy 32x32 PNG cut in half: the header is fine, the pixel data is not."""
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8)).save(buffer, format="PNG")
    data = buffer.getvalue()
    return data[: len(data) // 2]


@pytest.fixture(params=["local", "s3"])
def artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactRoot:
    """A fresh artifact root: a local folder, and a prefix on the real loopback S3 (each test runs on both)."""
    if request.param == "local":
        return ArtifactRoot(str(tmp_path / "artifact-root"), tmp_path / "artifact-cache")
    settings = request.getfixturevalue("s3_settings")
    url = f"s3://{ARTIFACT_BUCKET}/t-{uuid.uuid4().hex[:12]}"
    return ArtifactRoot(url, tmp_path / "artifact-cache", storage_options(settings))


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test server for every flow test of the session (each start costs ~20 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
