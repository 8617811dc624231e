"""Which failures a task retries: I/O only (network, storage, services), never data or spec errors."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from canvascraft.errors import StorageError

TRANSIENT = (StorageError, BotoCoreError, ClientError, ConnectionError, TimeoutError, OSError)


def retry_on_io(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: True for transient I/O failures only."""
    try:
        state.result()
    except TRANSIENT:
        return True
    except Exception as exc:  # MLflow wraps connection failures in MlflowException with a 5xx/unavailable code
        return type(exc).__name__ == "MlflowException" and "RESOURCE_DOES_NOT_EXIST" not in str(exc) and (
            "Connection" in str(exc) or "503" in str(exc) or "timed out" in str(exc)
        )
    return False
