"""What a worker on another machine needs to join a running stack: every service address, never the home."""

from __future__ import annotations

import os
import shlex

from canvascraft.errors import StackError
from canvascraft.redaction import mask_uri
from canvascraft.settings import Settings

SECRET_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
)


def worker_environment(settings: Settings, *, with_secrets: bool = False) -> dict[str, str]:
    """Environment of a worker that shares nothing with this machine but its services.

    ``CANVASCRAFT_USE_EMBEDDED=false`` makes the worker ignore any embedded state of its own home, so every address
    comes from here; its home is then only a cache. S3 keys are printed only when asked (``with_secrets``):
    otherwise the worker's own credential chain (environment, profile, instance role, a Kubernetes Secret) applies.
    """
    if settings.prefect_api_url is None:
        raise StackError(
            "no Prefect server is running in this stack; start it with `canvascraft stack up` "
            "(a worker needs a Prefect API to poll)"
        )
    endpoint = settings.resolved_s3_endpoint_url
    env = {
        "CANVASCRAFT_USE_EMBEDDED": "false",
        "CANVASCRAFT_ARTIFACT_ROOT": settings.resolved_artifact_root,
        "CANVASCRAFT_MLFLOW_TRACKING_URI": settings.resolved_mlflow_tracking_uri,
        "CANVASCRAFT_PUSHGATEWAY_URL": settings.resolved_pushgateway_url,
        "CANVASCRAFT_S3_REGION": settings.s3_region,
        "PREFECT_API_URL": str(settings.prefect_api_url),
    }
    if endpoint:
        env["CANVASCRAFT_S3_ENDPOINT_URL"] = endpoint
    if settings.resolved_redis_url:  # a password in it (redis://:pw@host) is shown only with the secrets
        redis = settings.resolved_redis_url
        env["CANVASCRAFT_REDIS_URL"] = redis if with_secrets else mask_uri(redis)
    if settings.ray_address:
        env["CANVASCRAFT_RAY_ADDRESS"] = settings.ray_address
    if not env["CANVASCRAFT_ARTIFACT_ROOT"].startswith("s3://"):
        raise StackError(
            f"the artifact root {env['CANVASCRAFT_ARTIFACT_ROOT']} is a local folder another machine "
            "cannot read; start the embedded S3 (`canvascraft stack up`) or set CANVASCRAFT_ARTIFACT_ROOT "
            "to an s3://bucket/prefix"
        )
    if env["CANVASCRAFT_MLFLOW_TRACKING_URI"].startswith("sqlite:"):
        raise StackError(
            "MLflow is a sqlite file on this machine; start the embedded MLflow server "
            "(`canvascraft stack up`) or set CANVASCRAFT_MLFLOW_TRACKING_URI to a server"
        )
    if with_secrets:
        creds = settings.s3_credentials()
        if creds:
            env["AWS_ACCESS_KEY_ID"] = creds["aws_access_key_id"]
            env["AWS_SECRET_ACCESS_KEY"] = creds["aws_secret_access_key"]
        # MLflow's own credential variables (the settings moved any user:password@ of the URI into them)
        env.update({name: os.environ[name] for name in SECRET_VARIABLES[2:] if os.environ.get(name)})
    return env


def export_lines(env: dict[str, str]) -> list[str]:
    """``export NAME=value`` lines, shell-quoted."""
    return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
