"""Notifications of CanvasCraft events: Prefect automations first, this process only for what they cannot cover.

Events: ``drift_detected`` (``canvascraft.drift.detected``), ``model_promoted`` (``canvascraft.retrain.completed``
with the resource label ``canvascraft.promoted: "true"``), ``rollback`` (``canvascraft.model.rolled-back``) and
``flow_failure`` (Prefect's ``prefect.flow-run.Failed`` / ``Crashed``).

Where a notification block is configured (the spec's ``notifications.block``, else ``CANVASCRAFT_NOTIFY_BLOCK``),
the Prefect server delivers it: ``canvascraft deploy`` renders ``deployments/automations/notify-*.yaml`` once per
pipeline into automations named :func:`automation_name` whose ``send-notification`` action points at the saved
block. The server renders their Jinja subject/body from the event, and a Crashed run (process gone, no hook ran)
is reported too. This module then only checks that such an automation is applied and enabled, and stays silent.

What this module still sends itself, and why:

* a webhook URL with no saved block document (``CANVASCRAFT_NOTIFY_SECRET_BLOCK``: a Prefect ``Secret`` holding
  the URL; ``CANVASCRAFT_NOTIFY_WEBHOOK_URL``): a ``send-notification`` action can only name a saved notification
  block. The URL becomes an in-memory ``SlackWebhook`` for ``hooks.slack.com``, else a
  ``CustomWebhookNotificationBlock`` posting JSON ``{event, subject, body, text, details}``; it is held only in
  secret fields and redacted from every message this module logs;
* a configured block whose automation is not applied on this API (``canvascraft deploy`` never ran there, or the
  pipeline is not among those it deployed), and the failure of a run no automation matches (the automations match
  the failed run's deployment; an ad-hoc ``python -m flows.train`` run has none): the saved block, loaded here.

Nothing configured: skipped (debug log). A failed delivery is logged and never fails the flow.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from prefect.blocks.core import Block
from prefect.blocks.notifications import (
    CustomWebhookNotificationBlock,
    NotificationBlock,
    SlackWebhook,
)
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.types import SecretDict
from prefect.utilities.asyncutils import run_coro_as_sync
from pydantic import SecretStr

from canvascraft.errors import SettingsError
from canvascraft.redaction import RedactingFilter, redact
from canvascraft.settings import Settings, get_settings
from canvascraft.spec import NOTIFY_EVENTS, NotificationsSpec
from tasks.run_log import run_logger

# Libraries that log request URLs while a notification is sent (httpx logs "HTTP Request: POST <url>" at INFO).
_URL_LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "apprise")


def automation_name(event: str, subject: str) -> str:
    """Name of the automation ``canvascraft deploy`` applies for ``event`` of one pipeline (rollback: one model)."""
    if event not in NOTIFY_EVENTS:
        raise SettingsError(f"notification event {event!r}; allowed values: {', '.join(NOTIFY_EVENTS)}")
    return f"canvascraft-notify-{event.replace('_', '-')}-{subject}"


def _related_ids(trigger: Any) -> set[str]:
    """The ``prefect.resource.id`` values an event trigger's ``match_related`` names."""
    specs = getattr(trigger, "match_related", None) or []
    ids: set[str] = set()
    for spec in specs if isinstance(specs, list) else [specs]:
        value = (spec.root if hasattr(spec, "root") else dict(spec)).get("prefect.resource.id")
        ids.update([value] if isinstance(value, str) else value or [])
    return ids


def covering_automation(event: str, subject: str | None, flow_run_id: str | None = None) -> str | None:
    """The applied, enabled automation that delivers ``event`` of ``subject`` (None: this process must send it).

    A failure is covered by any CanvasCraft failure automation matching the failed run's deployment (a rollback
    deployment belongs to the automation of the pipeline whose model it rolls back, whatever ``subject`` says).
    """
    with get_client(sync_client=True) as client:
        if event != "flow_failure":
            if not subject:
                return None
            name = automation_name(event, subject)
            return name if any(a.enabled for a in client.read_automations_by_name(name)) else None
        prefix = automation_name(event, "")
        found = [a for a in client.read_automations() if a.enabled and a.name.startswith(prefix)]
        deployment_id = client.read_flow_run(UUID(flow_run_id)).deployment_id if found and flow_run_id else None
    if deployment_id is None:  # an ad-hoc run: no deployment for an automation to match
        return None
    wanted = f"prefect.deployment.{deployment_id}"
    return next((a.name for a in found if wanted in _related_ids(a.trigger)), None)


def _resolved(value: Any) -> Any:
    """The result of a Prefect call that hands back a coroutine when called from an async context (a hook of an
    async flow): run it here, so a notification is never silently left unawaited."""
    return run_coro_as_sync(value) if inspect.iscoroutine(value) else value


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
        name="canvascraft",
        url="{{webhook_url}}",
        secrets=SecretDict({"webhook_url": url}),
        method="POST",
        headers=None,
        cookies=None,
        json_data={
            "source": "canvascraft",
            "event": event,
            "subject": "{{subject}}",
            "body": "{{body}}",
            "text": "{{subject}}\n{{body}}",
            "details": json.loads(json.dumps(dict(details or {}), default=str)),
        },
    )


def load_notification_block(slug: str) -> NotificationBlock:
    """The saved notification block ``TYPE/NAME``; an error names the slug when it is malformed or not a notifier."""
    if "/" not in slug:
        raise SettingsError(
            f"notification block {slug!r}: expected TYPE/NAME, "
            "e.g. custom-webhook/canvascraft-alerts or slack-webhook/ml-oncall"
        )
    block = _resolved(Block.load(slug))
    if not isinstance(block, NotificationBlock):
        raise SettingsError(f"block {slug!r} is a {type(block).__name__}, not a notification block")
    return block


def resolve_notifier(
    settings: Settings, event: str = "", details: Mapping[str, Any] | None = None, block_slug: str | None = None
) -> tuple[NotificationBlock | None, list[str]]:
    """The configured notification block (None when nothing is configured) and the secret strings to redact.

    ``block_slug`` (the spec's ``notifications.block``) wins over ``CANVASCRAFT_NOTIFY_BLOCK``.
    """
    slug = block_slug or settings.notify_block
    if slug:
        block = load_notification_block(slug)
        return block, _block_secrets(block)
    url: str | None = None
    if settings.notify_secret_block:
        secret = _resolved(Secret.load(settings.notify_secret_block))
        url = str(_resolved(secret.get()))
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
        getter = getattr(value, "get_secret_value", None)
        if callable(getter):
            secret = getter()
            found.extend(str(v) for v in secret.values()) if isinstance(secret, dict) else found.append(str(secret))
        elif name == "url" and isinstance(value, str):
            found.append(value)
    return found


def notify(
    event: str,
    subject: str,
    body: str,
    details: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    config: NotificationsSpec | None = None,
    about: str | None = None,
    flow_run_id: str | None = None,
) -> bool:
    """Send one notification from this process; True when delivered here, False when skipped (not configured, not
    listed, delivered by an automation) or when delivery failed (logged, redacted).

    ``config`` is the pipeline spec's ``notifications`` section: its block wins over the settings, and an event it
    does not list is skipped. ``about`` (pipeline, or model for a rollback) and ``flow_run_id`` (a failure) find the
    automation that delivers a block's notifications server-side.
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
        if (config and config.block) or settings.notify_block:
            automation = covering_automation(event, about, flow_run_id)
            if automation is not None:
                log.info("notification %s left to Prefect automation %s", event, automation)
                return False
        block, secrets = resolve_notifier(settings, event, details, config.block if config else None)
        if block is None:
            log.debug("notification %s skipped: no CANVASCRAFT_NOTIFY_* configured", event)
            return False
        with _redacted_library_logs(secrets + _env_secrets(settings)), block.raise_on_failure():
            _resolved(block.notify(body=body, subject=subject))
    except Exception as exc:  # noqa: BLE001 - best effort: an alert channel outage must not fail a flow
        log.warning(
            "notification %s not delivered: %s: %s",
            event,
            type(exc).__name__,
            redact(str(exc), secrets + _env_secrets(settings)),
        )
        return False
    log.info("notification %s sent: %s", event, subject)
    return True


def _env_secrets(settings: Settings) -> list[str]:
    """The env webhook URL, redacted even when a block was used."""
    return [settings.notify_webhook_url.get_secret_value()] if settings.notify_webhook_url else []


# The in-process messages below say what deployments/automations/notify-*.yaml say: keep the two in step.
def notify_drift_detected(result: Mapping[str, Any], config: NotificationsSpec | None = None) -> bool:
    """Drift found by a drift check (``DriftResult`` as a dict): share, drifted columns, report."""
    pipeline = result.get("pipeline", "?")
    return notify(
        "drift_detected",
        f"CanvasCraft: drift detected in {pipeline}",
        f"Drift share {float(result.get('drift_share', 0.0)):.3f} (threshold {result.get('drift_share_threshold')}) "
        f"of {result.get('incoming')} vs dataset {result.get('reference_dataset_version')}; drifted columns: "
        f"{', '.join(result.get('drifted_columns') or []) or 'none'}; report: "
        f"{result.get('report_uri') or result.get('report_html')}",
        {
            k: result.get(k)
            for k in (
                "pipeline",
                "drift_share",
                "drifted_columns",
                "incoming",
                "reference_dataset_version",
                "mlflow_run_id",
            )
        },
        config=config,
        about=str(pipeline),
    )


def notify_model_promoted(
    pipeline: str,
    published: Mapping[str, Any],
    mlflow_run_id: str | None = None,
    config: NotificationsSpec | None = None,
) -> bool:
    """A new ``@champion``: model, version, FID, why the gate promoted it."""
    return notify(
        "model_promoted",
        f"CanvasCraft: {published.get('model')} v{published.get('version')} promoted to @champion",
        f"Pipeline {pipeline}: {published.get('reason')}; FID {published.get('fid')}; previous champion "
        f"v{published.get('previous_champion')}; MLflow run {mlflow_run_id}",
        {
            "pipeline": pipeline,
            "model": published.get("model"),
            "version": published.get("version"),
            "fid": published.get("fid"),
            "mlflow_run_id": mlflow_run_id,
        },
        config=config,
        about=pipeline,
    )


def notify_rollback(model: str, outcome: Mapping[str, Any], config: NotificationsSpec | None = None) -> bool:
    """``@champion`` moved back to ``@previous``."""
    return notify(
        "rollback",
        f"CanvasCraft: {model} rolled back to v{outcome.get('champion')}",
        f"@champion of {model} is now v{outcome.get('champion')} (was v{outcome.get('replaced')}).",
        {"model": model, **dict(outcome)},
        config=config,
        about=model,
    )


def notify_flow_failure(
    flow_name: str,
    flow_run_name: str,
    flow_run_id: str,
    message: str,
    pipeline: str | None = None,
    config: NotificationsSpec | None = None,
) -> bool:
    """A flow run ended Failed or Crashed."""
    return notify(
        "flow_failure",
        f"CanvasCraft: flow {flow_name} run {flow_run_name} failed",
        f"Flow run {flow_run_name} ({flow_run_id}) of {flow_name}"
        + (f" for pipeline {pipeline}" if pipeline else "")
        + f" failed: {message[:1000]}",
        {"flow": flow_name, "flow_run_id": flow_run_id, "pipeline": pipeline},
        config=config,
        about=pipeline,
        flow_run_id=flow_run_id,
    )
