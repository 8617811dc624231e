"""Settings come from CANVASCRAFT_* env; defaults are local; secrets are masked in `config show`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from canvascraft.redaction import mask_uri
from canvascraft.settings import Settings


def test_env_overrides_and_absolute_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CANVASCRAFT_HOME", "rel-home")
    monkeypatch.setenv("CANVASCRAFT_S3_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("CANVASCRAFT_RAY_ADDRESS", "ray://head:10001")
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.home == tmp_path / "rel-home" and settings.home.is_absolute()
    assert settings.resolved_s3_endpoint_url == "http://minio:9000" and settings.ray_address == "ray://head:10001"
    assert settings.s3_credentials() == {}  # an explicit endpoint uses boto3's normal credential chain


def test_defaults_are_embedded(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert settings.resolved_mlflow_tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert settings.resolved_s3_endpoint_url is None  # no embedded S3 running and none configured: AWS
    (tmp_path / "stack").mkdir()
    state = {
        "endpoint_url": "http://127.0.0.1:1",
        "access_key_id": "AKIDEXAMPLE123",
        "secret_access_key": "s3cr3t-value",
    }
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    (tmp_path / "stack" / "s3.json").write_text(json.dumps({"pid": dead, **state}))
    assert Settings(home=tmp_path).resolved_s3_endpoint_url is None  # a dead server's state is stale, not trusted
    (tmp_path / "stack" / "s3.json").write_text(json.dumps({"pid": os.getpid(), **state}))  # a live process
    embedded = Settings(home=tmp_path)
    assert embedded.resolved_s3_endpoint_url == "http://127.0.0.1:1"
    described = json.dumps(embedded.describe())
    assert "s3cr3t-value" not in described and "AKIDEXAMPLE123" not in described and "AKID****" in described


def test_mlflow_password_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANVASCRAFT_MLFLOW_TRACKING_URI", "https://bob:hunter2@mlflow.example.com")
    assert "hunter2" not in json.dumps(Settings().describe())
    assert mask_uri("postgresql://u:p@h/db") == "postgresql://u:****@h/db"


def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("CANVASCRAFT_S3_MAX_CONCURRENCY", "0")
    with pytest.raises(ValidationError, match="s3_max_concurrency"):
        Settings()
