"""One typed settings object; local vs cluster is configuration only (env ``CANVASCRAFT_*``)."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from canvascraft.redaction import mask, mask_uri, split_userinfo


class Settings(BaseSettings):
    """Where CanvasCraft finds its storage and services. Defaults are embedded and local."""

    model_config = SettingsConfigDict(env_prefix="CANVASCRAFT_", extra="ignore")

    home: Path = Field(default=Path(".canvascraft"), description="Working folder for caches, stack state and logs.")
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint (MinIO, another S3 service). Unset: the embedded S3 when it runs, else AWS.",
    )
    use_embedded: bool = Field(default=True, description="Use embedded services (S3, MLflow, ...) when they run.")
    s3_region: str = Field(default="us-east-1", description="Region passed to boto3 for S3.")
    s3_max_attempts: int = Field(default=5, ge=1, le=20, description="botocore retry attempts (standard mode).")
    s3_max_concurrency: int = Field(default=16, ge=1, le=256, description="Parallel object transfers.")
    ingest_engine: Literal["obstore", "boto3"] = Field(
        default="obstore",
        description="What downloads ingest's objects: obstore (Rust object_store; measured faster "
        "than boto3 at the same threads, docs/benchmarks.md) or boto3. Listing uses boto3 either way.",
    )
    artifact_root: str | None = Field(
        default=None,
        description="Where run state that later runs read lives (s3://bucket/prefix): manifests, shards, reference "
        "tables, FID statistics, drift reports, Ray Tune experiments. Unset: the embedded S3's artifact bucket when "
        "it runs, else <home>/artifacts (one machine only).",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for Feast's online store (redis://host:port/db); "
        "unset: the embedded redis-server when it runs, else sqlite under home.",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow URI; unset: the embedded server, else sqlite under home. Credentials go in MLflow's "
        "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD; an http(s) URI with user:password@ works too, its "
        "credentials are moved into those variables and the URI is kept without them.",
    )
    mlflow_auth: bool = Field(
        default=False,
        description="Start the embedded MLflow with its basic-auth app; the "
        "admin is MLFLOW_TRACKING_USERNAME with MLFLOW_TRACKING_PASSWORD (clients use the same).",
    )
    feast_repo_path: Path = Field(default=Path("feature_repo"), description="Feast repository folder.")
    ray_address: str | None = Field(default=None, description="Ray cluster address; unset: start local Ray.")
    stage_workers: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Pieces a parallel stage (preprocess, "
        "palettes, FID features) runs at once on this machine's thread pool; unset: "
        "the CPU count. Not used when ray_address is set (Ray schedules the pieces).",
    )
    pushgateway_url: str | None = Field(default=None, description="Prometheus Pushgateway; unset: embedded one.")
    s3_port: int = Field(default=9000, ge=1024, le=65535, description="Loopback port of the embedded S3.")
    mlflow_port: int = Field(default=5000, ge=1024, le=65535, description="Loopback port of the embedded MLflow.")
    prefect_port: int = Field(default=4200, ge=1024, le=65535, description="Loopback port of the embedded Prefect.")
    redis_port: int = Field(default=6380, ge=1024, le=65535, description="Loopback port of the embedded Redis.")
    pushgateway_port: int = Field(default=9091, ge=1024, le=65535, description="Loopback port of the Pushgateway.")
    pushgateway_timeout: float = Field(default=5.0, gt=0, le=120, description="Seconds one metrics push may take.")
    notify_block: str | None = Field(
        default=None,
        description="Prefect notification block slug (TYPE/NAME), "
        "e.g. custom-webhook/canvascraft-alerts or slack-webhook/ml-oncall.",
    )
    notify_secret_block: str | None = Field(default=None, description="Prefect Secret block holding a webhook URL.")
    notify_webhook_url: SecretStr | None = Field(
        default=None, description="Webhook URL from the environment (Slack or generic JSON); never logged."
    )

    @field_validator("mlflow_tracking_uri")
    @classmethod
    def _credentials_out_of_uri(cls, value: str | None) -> str | None:
        # A password inside the URI would travel wherever the URI does (links, logs, Ray Tune's pickled callback,
        # Prefect's database); MLflow's REST client reads these variables on every request (rest_utils'
        # MlflowHostCreds), so the URI can be kept clean. Only http(s): a database URI needs its userinfo.
        if not value or not value.startswith(("http://", "https://")):
            return value
        clean, user, password = split_userinfo(value)
        if user:
            os.environ["MLFLOW_TRACKING_USERNAME"] = user
        if password is not None:
            os.environ["MLFLOW_TRACKING_PASSWORD"] = password
        return clean

    @field_validator("home", "feast_repo_path")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Feast and MLflow resolve relative paths against the cwd of whichever process reads them.
        return value.expanduser().resolve()

    def embedded_state(self, service: str) -> dict[str, Any] | None:
        """State a running embedded service recorded in ``<home>/stack/<service>.json`` (None when stopped or dead)."""
        from canvascraft.stack.process import (
            read_live_state,  # stdlib only; keeps settings import light
        )

        if not self.use_embedded:
            return None
        # A state file whose process died (kill -9, reboot) is stale: trusting it would point clients at nothing.
        return read_live_state(self.home / "stack" / f"{service}.json")

    @cached_property
    def embedded_s3(self) -> dict[str, Any] | None:
        """State of the embedded S3 server written by ``canvascraft stack up``, if any."""
        return self.embedded_state("s3")

    @property
    def resolved_s3_endpoint_url(self) -> str | None:
        """The endpoint boto3 talks to: explicit setting, else the embedded server, else AWS."""
        if self.s3_endpoint_url:
            return self.s3_endpoint_url
        return self.embedded_s3["endpoint_url"] if self.embedded_s3 else None

    @property
    def resolved_artifact_root(self) -> str:
        """The artifact root: explicit, else the embedded S3's artifact bucket, else a folder under the home."""
        if self.artifact_root:
            return self.artifact_root.rstrip("/")
        if self.embedded_s3 and self.embedded_s3.get("artifact_root"):
            return str(self.embedded_s3["artifact_root"])
        return str(self.home / "artifacts")

    @property
    def resolved_redis_url(self) -> str | None:
        """Redis for Feast's online store: explicit, else the embedded redis-server, else None (sqlite)."""
        if self.redis_url:
            return self.redis_url
        embedded = self.embedded_state("redis")
        return embedded["url"] if embedded else None

    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        """MLflow tracking URI: explicit, else the embedded MLflow server, else an absolute sqlite file under home."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        embedded = self.embedded_state("mlflow")
        return embedded["tracking_uri"] if embedded else f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def prefect_api_url(self) -> str | None:
        """The embedded Prefect server's API URL when it runs (Prefect itself reads PREFECT_API_URL)."""
        embedded = self.embedded_state("prefect")
        return embedded["api_url"] if embedded else None

    @property
    def resolved_pushgateway_url(self) -> str:
        """Pushgateway address; the embedded one on loopback by default."""
        return self.pushgateway_url or f"127.0.0.1:{self.pushgateway_port}"

    def s3_credentials(self) -> dict[str, str]:
        """Explicit keys only for the embedded server; otherwise boto3's normal chain decides."""
        if not self.s3_endpoint_url and self.embedded_s3:
            return {
                "aws_access_key_id": self.embedded_s3["access_key_id"],
                "aws_secret_access_key": self.embedded_s3["secret_access_key"],
            }
        return {}

    def describe(self) -> dict[str, Any]:
        """Resolved settings with secrets masked, for ``canvascraft config show``."""
        data: dict[str, Any] = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.model_dump().items()}
        data["resolved_s3_endpoint_url"] = self.resolved_s3_endpoint_url
        data["resolved_mlflow_tracking_uri"] = mask_uri(self.resolved_mlflow_tracking_uri)
        data["resolved_pushgateway_url"] = self.resolved_pushgateway_url
        data["resolved_artifact_root"] = self.resolved_artifact_root
        data["resolved_redis_url"] = self.resolved_redis_url
        creds = self.s3_credentials()
        data["s3_credentials"] = (
            {
                "source": "embedded",
                "aws_access_key_id": mask(creds["aws_access_key_id"]),
                "aws_secret_access_key": "****",
            }
            if creds
            else {"source": "boto3 default chain (env, profile, instance role)"}
        )
        for key, value in list(data.items()):
            if isinstance(value, SecretStr):
                data[key] = "****"
            elif isinstance(value, str) and "://" in value:
                data[key] = mask_uri(value)
        return data


def get_settings(**overrides: Any) -> Settings:
    """Fresh settings from the environment (cheap; never cached, so tests can change env)."""
    return Settings(**overrides)
