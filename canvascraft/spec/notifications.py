"""The notifications section: which Prefect notification block receives which of the pipeline's events."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from canvascraft.spec.base import SpecSection

NotifyEvent = Literal["drift_detected", "model_promoted", "rollback", "flow_failure"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = get_args(NotifyEvent)


def _all_events() -> list[NotifyEvent]:
    """Every event: a pipeline that names a block but no events hears about all of them."""
    return list(NOTIFY_EVENTS)


class NotificationsSpec(SpecSection):
    """Where this pipeline's alerts go: a Prefect notification block by slug, and which events it receives."""

    block: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        description="Saved notification block TYPE/NAME, e.g. slack-webhook/ml-oncall; "
        "unset: the CANVASCRAFT_NOTIFY_* settings decide.",
    )
    events: list[NotifyEvent] = Field(default_factory=_all_events)
