"""deployments/automations/*.yaml rendered into Prefect ``Automation`` objects and applied by name.

A file without ``notify_event`` is one automation, applied as written. A file with ``notify_event: EVENT`` is a
notification template, rendered once per pipeline that ``canvascraft deploy`` deploys: ``${NAME}`` placeholders
are filled at deploy time (a whole-value ``${deployment_ids}`` keeps its list type), Prefect's own ``{{ ... }}``
Jinja is left for the server to render when the automation fires. Placeholders: ``automation_name``,
``pipeline``, ``registered_model``, ``notify_block_id``, ``deployment_ids``. A template whose placeholder has no
value for a pipeline (no ``publish`` section, no deployment) is skipped for it.

Applying is by name: an existing automation of that name is updated in place (extra copies deleted), so running
deploy twice leaves one of each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import yaml
from pydantic import ValidationError

from canvascraft.errors import CanvasCraftError

AUTOMATIONS_DIR = Path("deployments") / "automations"
NOTIFY_KEY = "notify_event"
PLACEHOLDERS = ("automation_name", "pipeline", "registered_model", "notify_block_id", "deployment_ids")
_WHOLE = re.compile(r"\$\{(\w+)\}")


class _Skip(Exception):
    """A template needs a value this pipeline does not have."""


@dataclass(frozen=True)
class AutomationFile:
    """One YAML file: its document and, for a notification template, the CanvasCraft event it reports."""

    path: Path
    document: dict[str, Any]
    notify_event: str | None


@dataclass
class Pipeline:
    """What the notification templates need of one pipeline (from its spec and the deployments that run it)."""

    name: str
    registered_model: str | None
    block: str | None
    events: tuple[str, ...]
    deployments: list[str] = field(default_factory=list)  # flow/name of the deployments that run it
    deployment_ids: list[str] = field(default_factory=list)  # their ids once applied
    block_id: str | None = None  # the block's document id once resolved


def load_files(project: Path) -> list[AutomationFile]:
    """Every ``*.yaml`` under deployments/automations/, with its name and event checked."""
    from canvascraft.spec import NOTIFY_EVENTS

    files = []
    for path in sorted((project / AUTOMATIONS_DIR).glob("*.y*ml")):
        document = yaml.safe_load(path.read_text()) or {}
        where = f"{AUTOMATIONS_DIR / path.name}"
        if not isinstance(document, dict) or not document.get("name"):
            raise CanvasCraftError(f"{where}: an automation file needs a top-level name")
        event = document.pop(NOTIFY_KEY, None)
        if event is not None and event not in NOTIFY_EVENTS:
            raise CanvasCraftError(f"{where}: {NOTIFY_KEY} {event!r}; allowed values: {', '.join(NOTIFY_EVENTS)}")
        files.append(AutomationFile(path, document, event))
    return files


def fill(value: Any, values: dict[str, Any], where: str) -> Any:
    """``value`` with its ``${NAME}`` placeholders filled (raises _Skip when a used one is None or empty)."""
    if isinstance(value, dict):
        return {key: fill(item, values, where) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, values, where) for item in value]
    if not isinstance(value, str) or "$" not in value:
        return value
    for name in _WHOLE.findall(value):
        if name not in values:
            raise CanvasCraftError(
                f"{where}: unknown placeholder ${{{name}}}; allowed: " + ", ".join(f"${{{p}}}" for p in PLACEHOLDERS)
            )
        if values[name] in (None, [], ""):
            raise _Skip(name)
    whole = _WHOLE.fullmatch(value)
    if whole:
        return values[whole.group(1)]
    try:
        return Template(value).substitute({k: v for k, v in values.items() if isinstance(v, str)})
    except (KeyError, ValueError) as exc:
        raise CanvasCraftError(
            f"{where}: bad placeholder in {value[:60]!r} ({exc}); write $$ for a literal $"
        ) from None


def to_automation(document: dict[str, Any], where: str) -> Any:
    """A validated ``prefect.automations.Automation``; an error names the file and the field."""
    from prefect.automations import Automation

    try:
        return Automation.model_validate(document)
    except ValidationError as exc:
        raise CanvasCraftError(
            f"{where} is not a valid Prefect automation:\n"
            + "\n".join(f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:8])
        ) from None


def render_for(file: AutomationFile, pipeline: Pipeline, block_id: str) -> Any | None:
    """The notification template ``file`` for one pipeline (None when it does not apply to it)."""
    from tasks.notify import automation_name

    subject = pipeline.registered_model if file.notify_event == "rollback" else pipeline.name
    values = {
        "automation_name": automation_name(str(file.notify_event), subject) if subject else None,
        "pipeline": pipeline.name,
        "registered_model": pipeline.registered_model,
        "notify_block_id": block_id,
        "deployment_ids": [f"prefect.deployment.{i}" for i in pipeline.deployment_ids],
    }
    where = f"{AUTOMATIONS_DIR / file.path.name} (pipeline {pipeline.name})"
    try:
        return to_automation(fill(file.document, values, where), where)
    except _Skip:
        return None


def notification_block_id(client: Any, slug: str, used_by: str) -> str:
    """The id of the saved notification block ``TYPE/NAME``; an error names the block, who uses it and the types."""
    from prefect.exceptions import ObjectNotFound

    types = sorted(
        {
            s.block_type.slug
            for s in client.read_block_schemas()
            if "notify" in s.capabilities and s.block_type is not None
        }
    )
    type_slug, _, name = slug.partition("/")
    allowed = f"allowed types: {', '.join(types)}"
    if not name or type_slug not in types:
        problem = f"{type_slug!r} is not a notification block type" if name else "expected TYPE/NAME"
        raise CanvasCraftError(f"notification block {slug!r} ({used_by}): {problem}; {allowed}")
    try:
        return str(client.read_block_document_by_name(name=name, block_type_slug=type_slug, include_secrets=False).id)
    except ObjectNotFound:
        raise CanvasCraftError(
            f"notification block {slug!r} ({used_by}) is not saved on this Prefect API; create "
            f"it first (UI Blocks page, or e.g. CustomWebhookNotificationBlock(...).save("
            f"{name!r})); {allowed}"
        ) from None


def apply_by_name(client: Any, automation: Any) -> str:
    """Create ``automation``, or update the one of its name (extra copies deleted); 'created' or 'updated'."""
    from prefect.events.schemas.automations import AutomationCore

    existing = client.read_automations_by_name(automation.name)
    if not existing:
        client.create_automation(AutomationCore(**automation.model_dump(exclude={"id"})))
        return "created"
    # the update API takes no owner_resource (as prefect.automations.Automation.update does)
    client.update_automation(existing[0].id, AutomationCore(**automation.model_dump(exclude={"id", "owner_resource"})))
    for extra in existing[1:]:
        client.delete_automation(extra.id)
    return "updated"


def remove_by_name(client: Any, name: str) -> bool:
    """Delete every automation called ``name``; True when one existed."""
    existing = client.read_automations_by_name(name)
    for automation in existing:
        client.delete_automation(automation.id)
    return bool(existing)
