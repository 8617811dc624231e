"""The promotion lock: the gate's read-decide-write of one registered model, one holder at a time on any machine.

With a Prefect API configured, the lock is a Prefect global concurrency limit of one slot per registered model,
held as a lease (Prefect renews it while the holder lives and frees it when a killed holder's lease expires),
so two publishes on two pods cannot both "win". Without an API (a single machine, the temporary server of a
plain `python -m flows...` run), it is the file lock under the home.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from canvascraft.publishing import model_registry as registry
from canvascraft.settings import get_settings

LEASE_SECONDS = 60.0  # renewed while held; a SIGKILLed holder blocks the next publish at most this long
WAIT_SECONDS = 600.0  # a gate that rescored a big champion may hold it for minutes


def limit_name(registered_model: str) -> str:
    """The global concurrency limit that guards one registered model's aliases."""
    return f"canvascraft-promote-{registered_model}"


def prefect_api_url() -> str | None:
    """The Prefect API this process talks to (Prefect's own setting), else the embedded server of `stack up`."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or get_settings().prefect_api_url


@contextlib.contextmanager
def prefect_lease(registered_model: str, api_url: str) -> Iterator[None]:
    """Hold the model's one-slot global concurrency limit (created on first use) for the block."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.settings import PREFECT_API_URL, temporary_settings

    name = limit_name(registered_model)
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        # create-or-keep: the server enforces unique names (upsert is not atomic and would race)
        with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        # strict: a missing or unreachable limit is an error, never a silently unlocked gate
        with concurrency(name, occupy=1, timeout_seconds=WAIT_SECONDS, lease_duration=LEASE_SECONDS, strict=True):
            yield


def promotion_lock(registered_model: str) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """A lock factory for ``model_registry.gate_and_alias``/``rollback``/``promote``: Prefect lease or file lock."""
    api_url = prefect_api_url()
    if api_url is None:
        return registry.lock_for(get_settings().home, registered_model)
    return lambda: prefect_lease(registered_model, api_url)
