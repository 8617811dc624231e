"""``canvascraft config``: the resolved settings."""

from __future__ import annotations

import json

import typer

app = typer.Typer(help="Inspect settings.", no_args_is_help=True)


@app.command("show")
def config_show(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the resolved settings (secrets masked)."""
    from rich.table import Table

    from canvascraft.settings import get_settings
    from cli.common import print_table

    described = get_settings().describe()
    if as_json:
        typer.echo(json.dumps(described, indent=1, default=str))
        return
    table = Table("setting", "value")
    for key, value in described.items():
        table.add_row(key, json.dumps(value, default=str) if isinstance(value, dict) else str(value))
    print_table(table)
