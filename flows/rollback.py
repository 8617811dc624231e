"""The ``rollback`` flow: move a registered model's @champion back to @previous (for the Prefect UI)."""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from tasks.observability import observe_run
from tasks.publish import rollback_model
from tasks.reporting import report_rollback


@flow(name="rollback", log_prints=True, on_completion=[observe_run], on_failure=[observe_run], on_crashed=[observe_run])
def rollback(registered_model: str) -> dict[str, Any]:
    """Move a registered model's @champion alias back to its @previous version.

    Args:
        registered_model: The MLflow registered model name (e.g. canvascraft-digits); it must have a @previous
            version, which the promotion gate sets when it replaces a champion.
    """
    outcome = rollback_model(registered_model)
    report_rollback(registered_model, outcome)
    return outcome


if __name__ == "__main__":
    rollback(sys.argv[1])
