"""Helpers for tests against a real Prefect server (the ``prefect_server`` pytest process)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class PrefectStack:
    """The API URL of the test server and the log files a test may read."""

    api_url: str
    server_log: Path
    worker_log: Path
    deploy_output: str


def flow_runs(client: Any, deployment_name: str) -> list:
    """Flow runs of one deployment (``flow/name``)."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deployment = client.read_deployment_by_name(deployment_name)
    return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])))
