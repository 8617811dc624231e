"""The logger a task-layer helper should write to: the Prefect run logger inside a run, else a plain logger."""

from __future__ import annotations

import logging
from typing import Any

from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger


def run_logger(fallback: str) -> Any:
    """Prefect's run logger inside a flow/task run (hooks included), else ``logging.getLogger(fallback)``."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(fallback)
