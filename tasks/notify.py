"""Notifications through Prefect notification blocks: drift detected, model promoted, rollback, flow failure.

Where a message goes is configuration, looked up in this order:

1. the spec's ``notifications.block``, else ``CANVASCRAFT_NOTIFY_BLOCK``: slug ``TYPE/NAME`` of a saved Prefect notification block (``slack-webhook/ml-oncall``,
   ``custom-webhook/canvascraft-alerts``, ...); its URL and secrets live encrypted in the block.
2. ``CANVASCRAFT_NOTIFY_SECRET_BLOCK``: name of a Prefect ``Secret`` block whose value is a webhook URL.
3. ``CANVASCRAFT_NOTIFY_WEBHOOK_URL``: a webhook URL from the environment.

A URL (2, 3) becomes an in-memory ``SlackWebhook`` for ``hooks.slack.com``, else a ``CustomWebhookNotificationBlock``
posting JSON ``{event, subject, body, text, details}``. The URL is held only in secret fields and is redacted from
every message this module logs. Nothing configured: notifications are skipped (debug log). A failed delivery is
logged and never fails the flow.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from prefect.blocks.core import Block
from prefect.blocks.notifications import (
    CustomWebhookNotificationBlock,
    NotificationBlock,
    SlackWebhook,
)
from prefect.blocks.system import Secret
from prefect.types import SecretDict
from pydantic import SecretStr

from canvascraft.errors import SettingsError
from canvascraft.redaction import RedactingFilter, redact
from canvascraft.settings import Settings, get_settings
from canvascraft.spec import NOTIFY_EVENTS, NotificationsSpec
from tasks.run_log import run_logger

# Libraries that log request URLs while a notification is sent (httpx logs "HTTP Request: POST <url>" at INFO).
_URL_LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "apprise")


@contextmanager
def _redacted_library_logs(secrets: list[str]) -> Iterator[None]:
    """While sending, redact secrets from what HTTP libraries log."""
    redactor = RedactingFilter(secrets)
    loggers = [logging.getLogger(name) for name in _URL_LOGGERS]
    for logger in loggers:
        logger.addFilter(redactor)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(redactor)


def block_for_url(url: str, event: str = "", details: Mapping[str, Any] | None = None) -> NotificationBlock:
    """An unsaved notification block for a webhook URL: Slack for hooks.slack.com, else a generic JSON webhook."""
    if url.startswith("https://hooks.slack.com/"):
        return SlackWebhook(url=SecretStr(url))
    if not url.startswith(("http://", "https://")):
        raise SettingsError("notification webhook URL must start with http:// or https:// (value hidden)")
    return CustomWebhookNotificationBlock(
        name="canvascraft", url="{{webhook_url}}", secrets=SecretDict({"webhook_url": url}), method="POST",
        json_data={"source": "canvascraft", "event": event, "subject": "{{subject}}", "body": "{{body}}",
                   "text": "{{subject}}\n{{body}}", "details": json.loads(json.dumps(dict(details or {}), default=str))},
    )


def resolve_notifier(settings: Settings, event: str = "", details: Mapping[str, Any] | None = None,
                     block_slug: str | None = None) -> tuple[NotificationBlock | None, list[str]]:
    """The configured notification block (None when nothing is configured) and the secret strings to redact.

    ``block_slug`` (the spec's ``notifications.block``) wins over ``CANVASCRAFT_NOTIFY_BLOCK``.
    """
    slug = block_slug or settings.notify_block
    if slug:
        if "/" not in slug:
            raise SettingsError(f"notification block {slug!r}: expected TYPE/NAME, "
                                "e.g. custom-webhook/canvascraft-alerts or slack-webhook/ml-oncall")
        block = Block.load(slug)
        if not isinstance(block, NotificationBlock):
            raise SettingsError(f"block {slug!r} is a {type(block).__name__}, not a notification block")
        return block, _block_secrets(block)
    url: str | None = None
    if settings.notify_secret_block:
        url = str(Secret.load(settings.notify_secret_block).get())
    elif settings.notify_webhook_url is not None:
        url = settings.notify_webhook_url.get_secret_value()
    if not url:
        return None, []
    return block_for_url(url, event, details), [url]


def _block_secrets(block: NotificationBlock) -> list[str]:
    """Secret strings a saved block holds (URL, SecretDict values), so error messages can be redacted."""
    found: list[str] = []
    for name in type(block).model_fields:
        value = getattr(block, name, None)
        if hasattr(value, "get_secret_value"):
            secret = value.get_secret_value()
            found.extend(str(v) for v in secret.values()) if isinstance(secret, dict) else found.append(str(secret))
        elif name == "url" and isinstance(value, str):
            found.append(value)
    return found


def notify(event: str, subject: str, body: str, details: Mapping[str, Any] | None = None,
           settings: Settings | None = None, config: NotificationsSpec | None = None) -> bool:
    """Send one notification; True when delivered, False when not configured or delivery failed (logged, redacted).

    ``config`` is the pipeline spec's ``notifications`` section: its block wins over the settings, and an event it
    does not list is skipped.
    """
    if event not in NOTIFY_EVENTS:
        raise SettingsError(f"notification event {event!r}; allowed values: {', '.join(NOTIFY_EVENTS)}")
    settings = settings or get_settings()
    log = run_logger(__name__)
    if config is not None and event not in config.events:
        log.debug("notification %s skipped: not in the spec's notifications.events", event)
        return False
    secrets: list[str] = []
    try:
        block, secrets = resolve_notifier(settings, event, details, config.block if config else None)
        if block is None:
            log.debug("notification %s skipped: no CANVASCRAFT_NOTIFY_* configured", event)
            return False
        with _redacted_library_logs(secrets + _env_secrets(settings)), block.raise_on_failure():
            block.notify(body=body, subject=subject)
    except Exception as exc:  # delivery is best effort: an alert channel outage must not fail a flow
        log.warning("notification %s not delivered: %s: %s", event, type(exc).__name__,
                    redact(str(exc), secrets + _env_secrets(settings)))
        return False
    log.info("notification %s sent: %s", event, subject)
    return True


def _env_secrets(settings: Settings) -> list[str]:
    """The env webhook URL, redacted even when a block was used."""
    return [settings.notify_webhook_url.get_secret_value()] if settings.notify_webhook_url else []


def notify_drift_detected(result: Mapping[str, Any], config: NotificationsSpec | None = None) -> bool:
    """Drift found by a drift check (``DriftResult`` as a dict): share, drifted columns, report."""
    pipeline = result.get("pipeline", "?")
    return notify(
        "drift_detected", f"CanvasCraft: drift detected in {pipeline}",
        f"Drift share {float(result.get('drift_share', 0.0)):.3f} (threshold {result.get('drift_share_threshold')}) "
        f"of {result.get('incoming')} vs dataset {result.get('reference_dataset_version')}; drifted columns: "
        f"{', '.join(result.get('drifted_columns') or []) or 'none'}; report: "
        f"{result.get('report_uri') or result.get('report_html')}",
        {k: result.get(k) for k in ("pipeline", "drift_share", "drifted_columns", "incoming",
                                    "reference_dataset_version", "mlflow_run_id")},
        config=config,
    )


def notify_model_promoted(pipeline: str, published: Mapping[str, Any], mlflow_run_id: str | None = None,
                          config: NotificationsSpec | None = None) -> bool:
    """A new ``@champion``: model, version, FID, why the gate promoted it."""
    return notify(
        "model_promoted", f"CanvasCraft: {published.get('model')} v{published.get('version')} promoted to @champion",
        f"Pipeline {pipeline}: {published.get('reason')}; FID {published.get('fid')}; previous champion "
        f"v{published.get('previous_champion')}; MLflow run {mlflow_run_id}",
        {"pipeline": pipeline, "model": published.get("model"), "version": published.get("version"),
         "fid": published.get("fid"), "mlflow_run_id": mlflow_run_id},
        config=config,
    )


def notify_rollback(model: str, outcome: Mapping[str, Any], config: NotificationsSpec | None = None) -> bool:
    """``@champion`` moved back to ``@previous``."""
    return notify(
        "rollback", f"CanvasCraft: {model} rolled back to v{outcome.get('champion')}",
        f"@champion of {model} is now v{outcome.get('champion')} (was v{outcome.get('replaced')}).",
        {"model": model, **dict(outcome)},
        config=config,
    )


def notify_flow_failure(flow_name: str, flow_run_name: str, flow_run_id: str, message: str,
                        pipeline: str | None = None, config: NotificationsSpec | None = None) -> bool:
    """A flow run ended Failed or Crashed."""
    return notify(
        "flow_failure", f"CanvasCraft: flow {flow_name} run {flow_run_name} failed",
        f"Flow run {flow_run_name} ({flow_run_id}) of {flow_name}"
        + (f" for pipeline {pipeline}" if pipeline else "") + f" failed: {message[:1000]}",
        {"flow": flow_name, "flow_run_id": flow_run_id, "pipeline": pipeline},
        config=config,
    )
