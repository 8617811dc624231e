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
        typer.echo(json.dumps([r.model_dump(mode="json") for r in rows], indent=1))
        return
    from rich.table import Table

    from canvascraft.reports import classifier_summary
    from cli.common import print_table

    table = Table(
        "version", "aliases", "FID", "KID", "classifier score", "N", "dims", "reference", "gate verdict (like for like)"
    )
    for r in rows:
        score, gate = r.score, r.gate
        verdict = ""
        if gate is not None:
            champion_value = gate.champion.metric(gate.metric) if gate.champion is not None else None
            versus = (
                f" vs v{gate.champion_version} {gate.metric} {champion_value:.3f}" if champion_value is not None else ""
            )
            reason = "" if gate.champion is not None or gate.basis == "first-version" else f": {gate.reason}"
            verdict = f"{'promoted' if gate.promoted else 'kept champion'} ({gate.basis}){versus}{reason}"
        table.add_row(
            r.version,
            ",".join(r.aliases),
            f"{score.fid:.3f}" if score is not None else "nan",
            "" if score is None or score.kid_mean is None else f"{score.kid_mean:.4f}",
            classifier_summary(score),
            str(score.n) if score is not None else "None",
            str(score.dims) if score is not None else "None",
            str((score.reference if score is not None else None) or r.tags.get("dataset_version", ""))[:16],
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
