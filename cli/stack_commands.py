"""``canvascraft stack``: the embedded local services (S3, Redis, Pushgateway, MLflow, Prefect server and worker)."""

from __future__ import annotations

import json
from typing import Any

import typer

app = typer.Typer(
    help="The embedded local stack: S3, Pushgateway, MLflow, Prefect server and worker.", no_args_is_help=True
)
ONLY = typer.Option(
    None, "--only", help="Only these services: s3, redis, pushgateway, mlflow, prefect, worker (repeatable)."
)


def _services(settings: Any, only: list[str] | None = None) -> list[Any]:
    """Managed services of the local stack, in start order."""
    from canvascraft.stack.services import stack_services
    from cli.common import project_dir

    return stack_services(settings, project_dir(), only)


@app.command("up")
def stack_up(only: list[str] | None = ONLY) -> None:
    """Start the local services (idempotent; health-checked); print their URLs."""
    from canvascraft.settings import get_settings

    for service in _services(get_settings(), only):
        status = service.start()
        typer.echo(f"{status['name']}: up at {status['url']} (pid {status['pid']}, log {status['log']})")
    api = get_settings().prefect_api_url
    if api:
        typer.echo(f"Prefect clients: export PREFECT_API_URL={api}")


@app.command("down")
def stack_down(only: list[str] | None = ONLY) -> None:
    """Stop the local services."""
    from canvascraft.settings import get_settings

    for service in reversed(_services(get_settings(), only)):
        stopped = service.stop()
        typer.echo(f"{service.name}: {'stopped' if stopped else 'not running'}")


@app.command("status")
def stack_status(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    only: list[str] | None = ONLY,
) -> None:
    """Show each service's state, URL and log; exit 1 when one is not healthy."""
    from rich.table import Table

    from canvascraft.settings import get_settings
    from cli.common import print_table

    statuses = [service.status() for service in _services(get_settings(), only)]
    if as_json:
        typer.echo(json.dumps(statuses, indent=1))
        return
    table = Table("service", "running", "healthy", "url", "pid", "log")
    for s in statuses:
        table.add_row(s["name"], str(s["running"]), str(s["healthy"]), s["url"], str(s["pid"]), s["log"])
    print_table(table)
    if not all(s["healthy"] for s in statuses):
        raise typer.Exit(code=1)


@app.command("env")
def stack_env(
    worker: bool = typer.Option(
        False,
        "--worker",
        help="Everything a worker on another machine needs "
        "(service addresses, artifact root, CANVASCRAFT_USE_EMBEDDED=false).",
    ),
    with_secrets: bool = typer.Option(False, "--with-secrets", help="With --worker: include the S3 keys."),
) -> None:
    """Print ``export`` lines for the running stack (``eval "$(canvascraft stack env)"``)."""
    from canvascraft.settings import get_settings

    settings = get_settings()
    if worker:
        from canvascraft.stack.worker_env import (
            SECRET_VARIABLES,
            export_lines,
            worker_environment,
        )
        from tasks.result_storage import register_result_storage

        env = worker_environment(settings, with_secrets=with_secrets)
        # task results and cache records on S3: a cached stage hits whichever worker runs it
        env["PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"] = register_result_storage(settings, env["PREFECT_API_URL"])
        typer.echo("\n".join(export_lines(env)))
        if not with_secrets:
            typer.echo(
                f"# credentials not printed: give the worker {', '.join(SECRET_VARIABLES)} as needed "
                "(or run with --with-secrets)",
                err=True,
            )
        return
    api = settings.prefect_api_url
    if api:
        typer.echo(f"export PREFECT_API_URL={api}")
    else:
        typer.echo("# no embedded Prefect server running: flows start a temporary one", err=True)
