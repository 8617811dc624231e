"""``canvascraft features``: online features from Feast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Feature palettes served by Feast.", no_args_is_help=True)


@app.command("get")
def features_get(
    image_ids: Annotated[list[str], typer.Argument(help="Image ids (content sha256, as in the snapshot manifest).")],
    service: Annotated[str | None, typer.Option("--service", help="Feature service (the pipeline's name).")] = None,
    spec_file: Annotated[Path | None, typer.Option("--spec", help="Use this spec's feature service.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
) -> None:
    """Print online features of images from Feast's online store."""
    from rich.table import Table

    from canvascraft.errors import CanvasCraftError
    from canvascraft.features.retrieval import online_features
    from canvascraft.features.store import open_store
    from canvascraft.settings import get_settings
    from canvascraft.spec import load_spec
    from cli.common import print_table

    store = open_store(get_settings())
    name = service or (load_spec(spec_file).name if spec_file else None)
    if name is None:
        allowed = sorted(s.name for s in store.list_feature_services())
        raise CanvasCraftError(
            "give --service NAME or --spec FILE; allowed services: "
            f"{', '.join(allowed) or '(none: run a flow or feast apply)'}"
        )
    frame, _ = online_features(store, image_ids, name)
    rows = json.loads(frame.to_json(orient="records"))
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    table = Table("feature", *[r["image_id"][:12] for r in rows])
    for column in frame.columns[1:]:
        table.add_row(column, *[f"{r[column]:.4g}" if isinstance(r[column], float) else str(r[column]) for r in rows])
    print_table(table)
