"""Tasks that publish human-readable results as Prefect artifacts."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from canvascraft.ingest import IngestReport
from canvascraft.reports import ingest_markdown


@task(name="report-ingest", cache_policy=NO_CACHE)
def publish_ingest_report(report: IngestReport, pipeline: str) -> str:
    """A markdown artifact with the ingest counts and every quarantined object's reason."""
    return str(create_markdown_artifact(key=f"{pipeline}-ingest", markdown=ingest_markdown(report),
                                        description=f"Ingest of dataset version {report.dataset_version}"))
