"""The ``canvascraft`` command line (typer): one module per command group, assembled here.

Commands call the pure core; flows are run with ``python -m flows...``. Command modules import heavy libraries
(torch, MLflow, Ray, Feast, boto3, Prefect) inside command bodies, so ``--help`` and argument errors stay fast.
Every failure is reported by the one handler of :mod:`cli.error_handler`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from cli import (
    config_commands,
    data_commands,
    deploy_commands,
    drift_commands,
    features_commands,
    fid_commands,
    models_commands,
    spec_commands,
    stack_commands,
)
from cli.error_handler import ErrorHandlingGroup

PROG_NAME = "canvascraft"

# pretty_exceptions off: an exception that escapes the handler (CANVASCRAFT_DEBUG=1) prints Python's plain traceback
app = typer.Typer(
    help="CanvasCraft: train generative image models as Prefect workflows.",
    no_args_is_help=True,
    cls=ErrorHandlingGroup,
    pretty_exceptions_enable=False,
)
app.command("ingest")(data_commands.ingest_command)
app.command("fid")(fid_commands.fid_command)
app.command("deploy")(deploy_commands.deploy_command)
app.add_typer(config_commands.app, name="config")
app.add_typer(spec_commands.app, name="spec")
app.add_typer(stack_commands.app, name="stack")
app.add_typer(data_commands.app, name="data")
app.add_typer(features_commands.app, name="features")
app.add_typer(models_commands.app, name="models")
app.add_typer(drift_commands.app, name="drift")


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (``canvascraft``, ``python -m cli.main``): run the CLI and return its exit code.

    Click's standalone mode would print usage errors as a multi-line panel; here they become one ``error:`` line
    with click's exit code 2 (failures inside commands are reported by ``ErrorHandlingGroup``, exit 1).
    """
    command = typer.main.get_command(app)
    try:
        result = command.main(args=list(argv) if argv is not None else None, prog_name=PROG_NAME, standalone_mode=False)
    except typer.TyperException as exc:  # click's UsageError/BadParameter (typer vendors click as TyperException)
        code = int(getattr(exc, "exit_code", 2))
        if type(exc).__name__ == "NoArgsIsHelpError":
            return code  # the help was printed already (typer.rich_utils does the same)
        ctx = getattr(exc, "ctx", None)
        message = " ".join(exc.format_message().split()).rstrip(".")
        hint = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
        typer.echo(f"error: {message}{hint}", err=True)
        return code
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
