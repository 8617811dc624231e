"""The one error handler of the ``canvascraft`` CLI: any failure becomes one ``error: ...`` line on stderr, exit 1.

Classes of libraries the command never imported cannot be in a traceback, so the handler looks exception classes
up in ``sys.modules`` instead of importing botocore, MLflow, requests, ... itself: ``--help`` stays light.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import typer
from typer.core import TyperGroup

from canvascraft.errors import CanvasCraftError

DEBUG_ENV = "CANVASCRAFT_DEBUG"
DEBUG_HINT = f"run with {DEBUG_ENV}=1 for the traceback"
STACK_UP = "start it with `canvascraft stack up`"
# S3 error codes (and the bare HTTP status of a HEAD, which has no body) that mean "these keys are not accepted".
CREDENTIAL_CODES = {
    "401",
    "403",
    "AccessDenied",
    "Forbidden",
    "Unauthorized",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
}


def debug_enabled() -> bool:
    """True when ``CANVASCRAFT_DEBUG`` asks for tracebacks."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


class ErrorHandlingGroup(TyperGroup):
    """The root command group: every subcommand runs inside this one handler (no try block per command)."""

    def invoke(self, ctx: Any) -> Any:
        """Run the subcommand; turn a failure into one line on stderr and exit code 1."""
        try:
            return super().invoke(ctx)
        # typer.Exit/Abort and click's usage errors (typer.TyperException in typer >= 0.29, which vendors click)
        # are control flow with their own exit codes, and a closed stdout (`| head`) is handled by click's main
        # (exit 1, no message): pass them on untouched.
        except (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError):
            raise
        except Exception as exc:
            try:
                message = describe(exc)
            except Exception:  # noqa: BLE001 - a bug in describing must not hide the error itself
                message = f"{type(exc).__name__}: {exc} ({DEBUG_HINT})"
            typer.echo(f"error: {message}", err=True)
            if debug_enabled():
                raise
            raise typer.Exit(code=1) from None


def describe(exc: BaseException) -> str:
    """One line naming what failed and the fix; connection and credential failures win over their wrappers."""
    chain = list(_chain(exc))
    for item in chain:
        text = _credential_failure(item) or _connection_failure(item)
        if text:
            return _mask(text)
    if isinstance(exc, CanvasCraftError):
        return _mask(_one_line(str(exc)))
    validation = _loaded("pydantic_core", "ValidationError")
    for item in chain:
        if validation is not None and isinstance(item, validation):
            return _mask(_validation_failure(item))
    kind = type(exc).__qualname__
    if type(exc).__module__ != "builtins":
        kind = f"{type(exc).__module__}.{kind}"
    return _mask(f"{kind}: {_one_line(str(exc)) or '(no message)'} ({DEBUG_HINT})")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what caused it (``__cause__``, else ``__context__`` even when ``from None`` hid it)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _loaded(module: str, name: str) -> Any:
    """A class of an already imported module, else None (an exception of it cannot have been raised)."""
    found = sys.modules.get(module)
    return getattr(found, name, None) if found is not None else None


def _one_line(text: str) -> str:
    """Multi-line messages (a spec's list of problems) joined into one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    joined = ""
    for line in lines:
        joined += line if not joined else (" " if joined.endswith(":") else "; ") + line
    return joined


def _mask(text: str) -> str:
    """Hide any password embedded in a URI of the message (the one masking rule, canvascraft/redaction.py)."""
    from canvascraft.redaction import redact

    return redact(text)


def _settings() -> Any:
    """The resolved settings, or None when they are themselves broken (the error being reported may say why)."""
    try:
        from canvascraft.settings import get_settings

        return get_settings()
    except Exception:  # noqa: BLE001 - naming the service is best effort
        return None


def _s3_endpoint() -> str:
    """The S3 endpoint the CLI talks to, for messages."""
    settings = _settings()
    endpoint = settings.resolved_s3_endpoint_url if settings is not None else None
    return endpoint or "AWS S3 (no endpoint set)"


def _credential_failure(exc: BaseException) -> str | None:
    """S3 keys missing or refused, MLflow refusing the login: say where and which variables to set."""
    no_keys = tuple(
        c
        for c in (
            _loaded("botocore.exceptions", "NoCredentialsError"),
            _loaded("botocore.exceptions", "PartialCredentialsError"),
        )
        if c is not None
    )
    if no_keys and isinstance(exc, no_keys):
        return (
            f"no S3 credentials for {_s3_endpoint()} ({exc}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(or AWS_PROFILE), or use the embedded S3: `canvascraft stack up`"
        )
    client_error = _loaded("botocore.exceptions", "ClientError")
    if client_error is not None and isinstance(exc, client_error):
        response: dict[str, Any] = getattr(exc, "response", {}) or {}
        code = str(response.get("Error", {}).get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
        if code in CREDENTIAL_CODES:
            return (
                f"S3 at {_s3_endpoint()} refused the credentials ({code} on {getattr(exc, 'operation_name', '?')})"
                "; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for that endpoint and the "
                "bucket's policy"
            )
    mlflow_error = _loaded("mlflow.exceptions", "MlflowException")
    if mlflow_error is not None and isinstance(exc, mlflow_error):
        refused = getattr(exc, "error_code", "") in ("UNAUTHENTICATED", "PERMISSION_DENIED") or re.search(
            r"failed with error code 40[13]\b", str(exc)
        )
        if refused:
            return (
                f"MLflow at {_mlflow_uri()} refused the credentials ({getattr(exc, 'error_code', '')}); set "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
            )
    return None


def _mlflow_uri() -> str:
    """The tracking URI MLflow used (the client is configured before any request)."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        return str(mlflow.get_tracking_uri())
    settings = _settings()
    return settings.resolved_mlflow_tracking_uri if settings is not None else "(unknown)"


def _connection_failure(exc: BaseException) -> str | None:
    """A service that does not answer: name it, its URL (password masked) and the fix."""
    url: str | None = None
    service: str | None = None
    boto_connection = _loaded("botocore.exceptions", "ConnectionError")  # EndpointConnectionError, timeouts, ...
    mlflow_error = _loaded("mlflow.exceptions", "MlflowException")
    if boto_connection is not None and isinstance(exc, boto_connection):
        service, url = "S3", str(getattr(exc, "kwargs", {}).get("endpoint_url") or _s3_endpoint())
    elif (
        mlflow_error is not None
        and isinstance(exc, mlflow_error)
        and re.match(r"API request to (?!endpoint )\S+ failed with (timeout )?exception", str(exc))
    ):
        # mlflow.utils.rest_utils.http_request: requests could not connect (or timed out) after its retries
        service, url = "MLflow", _mlflow_uri()
    elif _is_instance(
        exc, ("requests.exceptions", "ConnectionError"), ("httpx", "ConnectError"), ("httpx", "ConnectTimeout")
    ):
        request = _request_of(exc)
        url = str(request.url) if request is not None else None
    elif _is_instance(exc, ("urllib3.exceptions", "NewConnectionError"), ("urllib3.exceptions", "MaxRetryError")):
        url = getattr(exc, "url", None)
        pool = getattr(exc, "pool", None) or getattr(exc, "conn", None)
        if pool is not None and getattr(pool, "host", None):
            url = f"{getattr(pool, 'scheme', 'http')}://{pool.host}:{pool.port}{url or ''}"
    elif _is_instance(exc, ("redis.exceptions", "ConnectionError")):
        settings = _settings()
        service, url = "Redis", (settings.resolved_redis_url if settings is not None else None) or "(unknown)"
    else:
        return None
    if url is not None and service != "MLflow":
        url = _origin(url)  # the service, not the object or API path that was asked for
    if service is None:
        service = _service_at(url)
    variable = {
        "S3": "CANVASCRAFT_S3_ENDPOINT_URL",
        "MLflow": "CANVASCRAFT_MLFLOW_TRACKING_URI",
        "the Prefect API": "PREFECT_API_URL",
        "Redis": "CANVASCRAFT_REDIS_URL",
        "the Pushgateway": "CANVASCRAFT_PUSHGATEWAY_URL",
    }.get(service or "")
    where = f"{service} at {url}" if service else f"{url or 'a service'}"
    fix = (
        f"{STACK_UP} or set {variable}"
        if variable
        else "check the service runs (`canvascraft stack status`) and its address (`canvascraft config show`)"
    )
    return f"cannot connect to {where} ({_reason(exc)}); {fix}"


def _is_instance(exc: BaseException, *classes: tuple[str, str]) -> bool:
    """isinstance against classes given as (module, name), only those already imported."""
    found = tuple(c for c in (_loaded(module, name) for module, name in classes) if isinstance(c, type))
    return bool(found) and isinstance(exc, found)


def _request_of(exc: BaseException) -> Any:
    """The request a requests/httpx error carries, if any (httpx raises when it has none)."""
    try:
        return getattr(exc, "request", None)
    except RuntimeError:
        return None


def _service_at(url: str | None) -> str | None:
    """Which configured service listens at ``url`` (same host and port), if any."""
    settings = _settings()
    if url is None or settings is None:
        return None
    candidates = {
        "S3": settings.resolved_s3_endpoint_url,
        "MLflow": settings.resolved_mlflow_tracking_uri,
        "the Prefect API": os.environ.get("PREFECT_API_URL") or settings.prefect_api_url,
        "Redis": settings.resolved_redis_url,
        "the Pushgateway": f"http://{settings.resolved_pushgateway_url}"
        if "://" not in settings.resolved_pushgateway_url
        else settings.resolved_pushgateway_url,
    }
    target = _host_port(url)
    for name, candidate in candidates.items():
        if candidate and "://" in candidate and _host_port(candidate) == target:
            return name
    return None


def _origin(url: str) -> str:
    """``scheme://netloc`` of a URL (the URL itself when it has no scheme)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else url


def _host_port(url: str) -> tuple[str | None, int | None]:
    """(host, port) of a URL, the scheme's default port filled in."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname, port or {"http": 80, "https": 443}.get(parts.scheme)


def _reason(exc: BaseException) -> str:
    """A few words on why the connection failed."""
    text = " ".join(str(e) for e in _chain(exc)).lower()
    for needle, reason in (
        ("refused", "connection refused"),
        ("timed out", "timed out"),
        ("timeout", "timed out"),
        ("name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("no route", "no route to host"),
    ):
        if needle in text:
            return reason
    return type(exc).__name__


def _validation_failure(exc: Any) -> str:
    """A pydantic ValidationError as ``field: message (got value)``; settings fields as their env variables."""
    title = str(getattr(exc, "title", "input"))
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        if title == "Settings" and loc:
            loc = "CANVASCRAFT_" + loc.upper()  # pydantic-settings reads them from the environment
        message = str(err.get("msg", "")).removeprefix("Value error, ")
        if err.get("type") not in ("missing", "value_error") and "input" in err and not isinstance(err["input"], dict):
            message += f" (got {err['input']!r})"
        problems.append(f"{loc}: {message}" if loc else message)
    return f"invalid {'settings' if title == 'Settings' else title}: " + "; ".join(problems)
