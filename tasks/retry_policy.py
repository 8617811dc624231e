"""Which failures a task retries: transient I/O only (network, throttling, 5xx), never data, spec or 4xx errors."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from canvascraft.errors import StorageError

# S3 error codes that are worth another attempt although their status is not 5xx (botocore's throttling set).
RETRYABLE_S3_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
    }
)


def _client_error_is_transient(exc: ClientError) -> bool:
    """A 5xx or a throttling code: the service may answer next time; a 4xx (missing bucket, denied) will not."""
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    code = str(exc.response.get("Error", {}).get("Code") or "")
    return status >= 500 or code in RETRYABLE_S3_CODES


def is_transient(exc: BaseException) -> bool:
    """True for failures another attempt may not meet: connection, timeout, S3 5xx/throttling, MLflow unavailable."""
    cause: BaseException | None = exc
    while cause is not None:  # a domain error raised from an S3 error is judged by that error
        if isinstance(cause, ClientError):
            return _client_error_is_transient(cause)
        cause = cause.__cause__
    if isinstance(exc, (StorageError, BotoCoreError, ConnectionError, TimeoutError)):
        return True
    if type(exc).__name__ == "MlflowException":  # MLflow wraps connection failures and 5xx answers
        text = str(exc)
        return "RESOURCE_DOES_NOT_EXIST" not in text and any(
            marker in text for marker in ("Connection", "503", "502", "504", "timed out", "TEMPORARILY_UNAVAILABLE")
        )
    return isinstance(exc, OSError)


def retry_on_io(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: True for transient I/O failures only."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - classified below
        return is_transient(exc)
    return False
