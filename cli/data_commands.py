"""``canvascraft data seed`` (datasets into S3) and ``canvascraft ingest`` (S3 into the validated local cache)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Datasets in S3.", no_args_is_help=True)


@app.command("seed")
def data_seed(
    dest: Annotated[str, typer.Option("--dest", help="s3://BUCKET/PREFIX to write to.")],
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", help="digits | fashion-mnist (60k train) | fashion-mnist-70k (train + test)"),
    ] = None,
    from_dir: Annotated[
        Path | None, typer.Option("--from-dir", help="Upload this folder (class sub-folders = labels).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Write at most N images.")] = None,
) -> None:
    """Write a real dataset (or a local folder) to S3 as PNG objects plus labels.csv."""
    from canvascraft.datasets import seed_dataset, seed_from_dir
    from canvascraft.errors import CanvasCraftError
    from canvascraft.settings import get_settings
    from canvascraft.storage import make_s3_client
    from cli.common import progress

    if (dataset is None) == (from_dir is None):
        raise CanvasCraftError(
            "give exactly one of --dataset (digits | fashion-mnist | fashion-mnist-70k) or --from-dir DIR"
        )
    settings = get_settings()
    client = make_s3_client(settings)
    with progress(f"upload to {dest}") as (_, advance):
        if dataset is not None:
            result = seed_dataset(
                dataset, client, dest, limit=limit, on_progress=advance, max_workers=settings.s3_max_concurrency
            )
        else:
            result = seed_from_dir(from_dir, client, dest, on_progress=advance, max_workers=settings.s3_max_concurrency)
    typer.echo(json.dumps(result))


def ingest_command(
    source: Annotated[list[str], typer.Argument(help="s3://BUCKET/PREFIX (one or more).")],
    spec_file: Annotated[
        Path | None, typer.Option("--spec", help="Take validation rules from this spec's data section.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the ingest report as JSON.")] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify", help="Re-hash (sha256) every cached object before reusing it; a damaged copy is fetched again."
        ),
    ] = False,
) -> None:
    """Download and validate images into the local content-addressed cache; print the report."""
    from canvascraft.settings import get_settings
    from canvascraft.spec import DataSpec, load_spec

    settings = get_settings()
    data = load_spec(spec_file).data if spec_file else DataSpec(source=source[0])
    # imported once the arguments are valid: a mistyped URI is reported without loading boto3 and Pillow
    from canvascraft.ingest import ImageRules, ingest
    from canvascraft.storage import make_s3_client
    from cli.common import progress

    with progress("ingest") as (set_total, advance):
        report = ingest(
            source,
            make_s3_client(settings),
            settings.home / "cache",
            ImageRules.from_spec(data),
            min_valid_count=data.min_valid_count,
            min_valid_fraction=data.min_valid_fraction,
            max_workers=settings.s3_max_concurrency,
            on_total=set_total,
            on_progress=advance,
            verify=verify,
        )
    if as_json:
        typer.echo(json.dumps(report.summary(), indent=1))
    else:
        typer.echo(
            f"dataset version {report.dataset_version}: {report.valid} valid, {len(report.quarantined)} quarantined, "
            f"{report.downloaded} downloaded, {report.reused} reused ({report.seconds:.1f}s)"
        )
        for q in report.quarantined:
            typer.echo(f"  quarantined {q.uri}: {q.reason}")
