"""``canvascraft models``: registered models in MLflow (list, roll back, promote, generate)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="Registered models in MLflow: list, promote, roll back, generate.", no_args_is_help=True)


def _registry() -> Any:
    """The registry module with MLflow pointed at the configured tracking URI."""
    import logging

    from canvascraft import tracking
    from canvascraft.publishing import model_registry
    from canvascraft.settings import get_settings

    tracking.configure(get_settings())
    # MLflow logs "Creating initial MLflow database tables..." at INFO when a fresh sqlite store is first opened:
    # setup noise for a command whose output is a table or one error line
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    return model_registry


@app.command("list")
def models_list(
    name: str = typer.Argument(..., help="Registered model name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Versions with aliases, scores and lineage."""
    rows = _registry().list_versions(name)
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich.table import Table

    from canvascraft.reports import classifier_summary, gate_metric_value
    from cli.common import print_table

    table = Table(
        "version", "aliases", "FID", "KID", "classifier score", "N", "dims", "reference", "gate verdict (like for like)"
    )
    for r in rows:
        score = r["score"] or {}
        gate = r.get("gate") or {}
        champion = gate.get("champion") or {}
        verdict = ""
        if gate:
            metric = gate.get("metric", "fid")
            champion_value = gate_metric_value(champion, metric)
            versus = (
                f" vs v{gate.get('champion_version')} {metric} {champion_value:.3f}"
                if champion_value is not None
                else ""
            )
            reason = "" if champion or gate.get("basis") == "first-version" else f": {gate.get('reason')}"
            verdict = f"{'promoted' if gate.get('promoted') else 'kept champion'} ({gate.get('basis')}){versus}{reason}"
        kid = score.get("kid_mean")
        table.add_row(
            r["version"],
            ",".join(r["aliases"]),
            f"{score.get('fid', float('nan')):.3f}",
            "" if kid is None else f"{kid:.4f}",
            classifier_summary(score),
            str(score.get("n")),
            str(score.get("dims")),
            str(score.get("reference") or r["tags"].get("dataset_version", ""))[:16],
            verdict,
        )
    print_table(table)


@app.command("rollback")
def models_rollback(name: str = typer.Argument(..., help="Registered model name.")) -> None:
    """Move @champion back to @previous (refused when there is none)."""
    from cli.common import promotion_lock

    outcome = _registry().rollback(name, promotion_lock(name))
    typer.echo(f"{name}: @champion -> v{outcome['champion']} (was v{outcome['replaced']})")


@app.command("promote")
def models_promote(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help="Version to make @champion."),
) -> None:
    """Make a version the champion by hand (the old one becomes @previous)."""
    from cli.common import promotion_lock

    outcome = _registry().promote(name, version, promotion_lock(name))
    typer.echo(f"{name}: @champion -> v{outcome['champion']} (@previous v{outcome['previous']})")


@app.command("generate")
def models_generate(
    reference: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME/VERSION (default alias: champion).")],
    n: Annotated[int, typer.Option("-n", "--n", min=1, max=4096, help="Images to generate.")] = 16,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed.")] = 0,
    out: Annotated[Path, typer.Option("--out", help="PNG grid to write.")] = Path("grid.png"),
    scale: Annotated[
        int, typer.Option("--scale", min=1, max=16, help="Enlarge each pixel to SCALE x SCALE for viewing.")
    ] = 1,
) -> None:
    """Generate images from a registered model and write them as a PNG grid."""
    registry = _registry()
    images = registry.generate(reference, n, seed)
    path = registry.write_grid_png(images, out, scale=scale)
    typer.echo(f"wrote {n} images ({images.shape[1]}x{images.shape[2]}) to {path}")
