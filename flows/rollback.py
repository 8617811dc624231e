"""The ``rollback`` flow: move a registered model's @champion back to @previous (for the Prefect UI)."""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from tasks.observability import observe_run
from tasks.publish import rollback_model


@flow(name="rollback", log_prints=True, on_completion=[observe_run], on_failure=[observe_run], on_crashed=[observe_run])
def rollback(registered_model: str) -> dict[str, Any]:
    """Move a registered model's @champion alias back to its @previous version.

    Args:
        registered_model: The MLflow registered model name (e.g. canvascraft-digits); it must have a @previous
            version, which the promotion gate sets when it replaces a champion.
    """
    outcome = rollback_model(registered_model)
    print(f"{registered_model}: @champion is now v{outcome['champion']} (was v{outcome['replaced']})")
    return outcome


if __name__ == "__main__":
    rollback(sys.argv[1])
