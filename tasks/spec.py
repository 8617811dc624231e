"""Task: resolve and validate the pipeline spec."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from canvascraft.spec import PipelineSpec, load_spec


@task(name="resolve-spec", cache_policy=NO_CACHE)
def resolve_spec(spec: str | dict[str, Any]) -> PipelineSpec:
    """Parse and validate the spec (a YAML path, YAML text or a mapping); fails fast with field paths."""
    return load_spec(spec)
