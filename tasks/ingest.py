"""Task: ingest the spec's S3 sources into the content-addressed cache."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from canvascraft.artifact_root import artifact_root
from canvascraft.ingest import ImageRules, IngestReport, ingest
from canvascraft.settings import get_settings
from canvascraft.spec import PipelineSpec
from canvascraft.storage import make_s3_client
from tasks.retry_policy import retry_on_io


# Not cached by Prefect: S3 can change under the same URI. Ingest itself is incremental (ETag + size),
# so a rerun downloads nothing that did not change.
@task(name="ingest", retries=3, retry_delay_seconds=[2, 10, 30], retry_condition_fn=retry_on_io, cache_policy=NO_CACHE)
def ingest_snapshot(spec: PipelineSpec) -> IngestReport:
    """Download, validate and snapshot the spec's sources; quarantine invalid objects."""
    settings = get_settings()
    data = spec.data
    return ingest(
        [data.source, *data.extra_sources],
        make_s3_client(settings),
        settings.home / "cache",
        ImageRules.from_spec(data),
        min_valid_count=data.min_valid_count,
        min_valid_fraction=data.min_valid_fraction,
        max_workers=settings.s3_max_concurrency,
        artifacts=artifact_root(settings),
    )
