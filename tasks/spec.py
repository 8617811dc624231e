"""Task: resolve and validate the pipeline spec."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from canvascraft.spec import PipelineSpec, load_spec, with_extra_sources


@task(name="resolve-spec", cache_policy=NO_CACHE)
def resolve_spec(spec: str | dict[str, Any], extra_sources: list[str] | None = None) -> PipelineSpec:
    """Parse and validate the spec (a YAML path, YAML text or a mapping), plus ``extra_sources``; fails fast."""
    return with_extra_sources(load_spec(spec), extra_sources)
