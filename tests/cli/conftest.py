"""A real `prefect server start` for the deploy tests (its own home, so it never meets the flow tests' stack)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from canvascraft.settings import get_settings
from canvascraft.stack.process import free_port
from canvascraft.stack.services import prefect_service


@pytest.fixture(scope="module")
def prefect_api_server(tmp_path_factory) -> Iterator[str]:
    """The API URL of a fresh Prefect server on a free loopback port (sqlite under a temp home), stopped after."""
    settings = get_settings(home=tmp_path_factory.mktemp("deploy-home"), prefect_port=free_port())
    server = prefect_service(settings)
    server.start()
    try:
        yield f"http://127.0.0.1:{settings.prefect_port}/api"
    finally:
        server.stop()
