"""A run's extra data sources (from a drift event or a form): allowed only under the spec's ``drift.incoming``."""

from __future__ import annotations

from canvascraft.errors import SpecError
from canvascraft.spec.loading import parse_spec
from canvascraft.spec.pipeline import PipelineSpec


def under_prefix(uri: str, prefix: str) -> bool:
    """True when ``uri`` is ``prefix`` or lies below it (``s3://b/in`` holds ``s3://b/in/x``, not ``s3://b/inx``)."""
    return uri.rstrip("/") == prefix.rstrip("/") or uri.startswith(prefix.rstrip("/") + "/")


def with_extra_sources(spec: PipelineSpec, uris: list[str] | None) -> PipelineSpec:
    """The spec with ``uris`` appended to ``data.extra_sources`` (order kept, duplicates and the source dropped).

    A run's extra sources are data from an event or a form, not configuration: each must lie under the spec's
    ``drift.incoming`` prefix, so a drift event can add the new images but never point training elsewhere.
    """
    for uri in uris or []:
        if not spec.drift.incoming:
            raise SpecError(
                f"extra_sources: {uri!r} is not allowed: spec {spec.name!r} sets no drift.incoming "
                "prefix; allowed values: none (add sources to data.extra_sources in the spec)"
            )
        if not under_prefix(uri, spec.drift.incoming):
            raise SpecError(
                f"extra_sources: {uri!r} is not under the spec's drift.incoming prefix; allowed values: "
                f"{spec.drift.incoming} or a prefix below it"
            )
    wanted = [u for u in dict.fromkeys(uris or []) if u != spec.data.source and u not in spec.data.extra_sources]
    if not wanted:
        return spec
    data = spec.model_dump(mode="json")
    data["data"]["extra_sources"] = [*spec.data.extra_sources, *wanted]
    return parse_spec(data, f"{spec.name} + extra_sources")
