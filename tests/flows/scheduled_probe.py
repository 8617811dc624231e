"""A minimal flow for the schedule test: a deployment of it on an interval proves the scheduler fires end to end."""

from __future__ import annotations

from prefect import flow


@flow(name="scheduled-probe")
def scheduled_probe() -> str:
    """Return a marker; the test reads the run's state, not the value."""
    return "fired"
