"""``canvascraft spec``: pipeline spec validation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Pipeline specs.", no_args_is_help=True)


@app.command("validate")
def spec_validate(file: Annotated[Path, typer.Argument(help="Pipeline spec YAML.")]) -> None:
    """Validate a pipeline spec; errors name the field path and the allowed values."""
    from canvascraft.spec import load_spec

    spec = load_spec(file)
    typer.echo(f"{file}: valid (pipeline {spec.name!r}, spec hash {spec.spec_hash()})")
