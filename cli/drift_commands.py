"""``canvascraft drift``: new images against the champion's reference features (Evidently)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Drift of new images against the champion's reference features (Evidently).", no_args_is_help=True
)


@app.command("check")
def drift_check_command(
    spec_file: Annotated[Path, typer.Argument(help="Pipeline spec YAML (drift settings, palettes, publish target).")],
    incoming: Annotated[
        str | None,
        typer.Option("--incoming", help="s3://BUCKET/PREFIX of new images (default: the spec's drift.incoming)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the drift result as JSON.")] = False,
    push_features: Annotated[
        bool,
        typer.Option(
            "--push-features/--no-push-features", help="Write the new images' features to Feast and materialize them."
        ),
    ] = True,
    fail_on_drift: Annotated[bool, typer.Option("--fail-on-drift", help="Exit 3 when the dataset drifted.")] = False,
) -> None:
    """Compare new images with the champion's reference features; HTML report + MLflow run (emits no event).

    The Prefect flow (``python -m flows.drift_check SPEC --incoming ...`` or the drift_check deployment) does the
    same and also emits ``canvascraft.drift.detected``, which starts a retrain.
    """
    from canvascraft.drift import check_drift, log_drift_run
    from canvascraft.settings import get_settings
    from canvascraft.spec import load_spec

    settings = get_settings()
    spec = load_spec(spec_file)
    checked = check_drift(spec, settings, incoming)
    result = log_drift_run(settings, spec, checked.result, tags={"source": "cli"})
    features = None
    if push_features:
        from canvascraft.artifact_root import artifact_root
        from canvascraft.features.stage import materialize_snapshot
        from canvascraft.ingest.snapshots import load_manifest

        manifest = load_manifest(checked.incoming_report.dataset_version, artifact_root(settings))
        features = materialize_snapshot(manifest, spec, settings)
    if as_json:
        data = result.model_dump(mode="json")
        data["features"] = features.model_dump(include={"rows_written", "rows_materialized"}) if features else None
        typer.echo(json.dumps(data, indent=1))
    else:
        from rich.table import Table

        from cli.common import print_table

        table = Table("feature", "score", "method", "drifted")
        for name, column in sorted(result.columns.items(), key=lambda kv: (not kv[1].drifted, kv[0])):
            table.add_row(
                name,
                "n/a" if column.score is None else f"{column.score:.4g}",
                column.method,
                "yes" if column.drifted else "",
            )
        print_table(table)
        typer.echo(
            f"{'DRIFT' if result.dataset_drift else 'no drift'}: share {result.drift_share:.3f} "
            f"(threshold {result.drift_share_threshold}) of {result.incoming} vs dataset "
            f"{result.reference_dataset_version} ({result.reference_model} v{result.reference_model_version}); "
            f"report {result.report_html}; MLflow run {result.mlflow_run_id}"
        )
    if fail_on_drift and result.dataset_drift:
        raise typer.Exit(code=3)
