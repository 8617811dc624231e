"""Markdown renderings of stage reports (shown as Prefect artifacts and in the README's demo output)."""

from __future__ import annotations

from canvascraft.ingest import IngestReport


def ingest_markdown(report: IngestReport, max_rows: int = 50) -> str:
    """Ingest counts and a table of quarantined objects (first ``max_rows``)."""
    lines = [
        f"# Ingest: dataset version `{report.dataset_version}`",
        "",
        f"Sources: {', '.join(f'`{s}`' for s in report.sources)}",
        "",
        "| objects | valid | quarantined | downloaded | reused | MB downloaded | seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {report.total} | {report.valid} | {len(report.quarantined)} | {report.downloaded} | {report.reused} "
        f"| {report.bytes_downloaded / 1e6:.2f} | {report.seconds:.2f} |",
        "",
    ]
    if report.quarantined:
        lines += ["## Quarantined", "", "| object | reason |", "|---|---|"]
        lines += [f"| `{q.uri}` | {q.reason} |" for q in report.quarantined[:max_rows]]
        if len(report.quarantined) > max_rows:
            lines.append(f"| ... | {len(report.quarantined) - max_rows} more in `{report.manifest_path}` |")
    return "\n".join(lines)
