"""``canvascraft deploy``: work pool, automations and deployments on the Prefect API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

POOL_TEMPLATES = {"process": "deployments/work-pools/process.json",
                  "kubernetes": "deployments/work-pools/kubernetes-gpu.json"}
NOTIFY_PLACEHOLDER = "{{ notify_block_id }}"


def _prefect(args: list[str], project: Path, check: bool = True) -> Any:
    """Run the Prefect CLI of this environment (no prompts) in the project folder; echo what it runs."""
    import os
    import subprocess

    from canvascraft.errors import CanvasCraftError
    from canvascraft.stack.services import _script

    command = [_script("prefect"), "--no-prompt", *args]
    typer.echo("$ prefect " + " ".join(args))
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)  # exit code judged below
    if check and done.returncode != 0:
        api = os.environ.get("PREFECT_API_URL") or "(none set)"
        raise CanvasCraftError(f"`prefect {' '.join(args)}` failed (exit {done.returncode}, Prefect API {api}):\n"
                               f"{_gist(done.stdout + done.stderr)}")
    return done


def _gist(output: str) -> str:
    """The tail of Prefect's output without traceback frames: its exception line and its own message."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        # frames are indented; the exception ("httpx.ConnectError: ...") and Prefect's summary are not
        lines = [line for line in lines if not line[:1].isspace() and not line.startswith(
            ("Traceback (most recent call last)", "The above exception", "During handling of the above"))]
    return "\n".join(lines[-5:])[-2000:]


def _automation_files(project: Path, notify_block: str | None) -> list[tuple[Path, str, str | None]]:
    """(file, automation name, block slug to fill in or None) for deployments/automations/*.yaml."""
    import yaml

    from canvascraft.errors import CanvasCraftError

    found = []
    for path in sorted((project / "deployments" / "automations").glob("*.y*ml")):
        text = path.read_text()
        name = (yaml.safe_load(text) or {}).get("name")
        if not name:
            raise CanvasCraftError(f"{path}: an automation file needs a top-level name")
        found.append((path, name, notify_block if NOTIFY_PLACEHOLDER in text else None))
    return found


def deploy_command(
    pool_type: str = typer.Option("process", "--pool-type", help="process (local worker) | kubernetes "
                                  "(GPU nodes; the template requests nvidia.com/gpu)."),
    notify_block: str | None = typer.Option(None, "--notify-block", help="Notification block slug "
                                               "(e.g. custom-webhook/canvascraft-alerts) for failed retrains."),
    skip_deploy: bool = typer.Option(False, "--skip-deploy", help="Only the pool and automations."),
) -> None:
    """Create/update the work pool, apply deployments/automations/, then `prefect deploy --all`."""
    import os
    import tempfile

    from canvascraft.errors import CanvasCraftError
    from canvascraft.settings import get_settings
    from canvascraft.stack.services import (
        WORK_POOL as pool,  # the pool every deployment in prefect.yaml names
    )
    from cli.common import project_dir

    if pool_type not in POOL_TEMPLATES:
        raise CanvasCraftError(f"--pool-type {pool_type!r} is not allowed; allowed values: {', '.join(POOL_TEMPLATES)}")
    project = project_dir()
    if not (project / "prefect.yaml").is_file():
        raise CanvasCraftError(f"no prefect.yaml at or above {Path.cwd()}; run from the CanvasCraft project")
    if not os.environ.get("PREFECT_API_URL") and get_settings().prefect_api_url:
        os.environ["PREFECT_API_URL"] = get_settings().prefect_api_url  # the embedded server of `stack up`
    _prefect(["work-pool", "create", pool, "--type", pool_type, "--base-job-template",
              str(project / POOL_TEMPLATES[pool_type]), "--overwrite"], project)
    for path, name, block in _automation_files(project, notify_block):
        if NOTIFY_PLACEHOLDER in path.read_text() and block is None:
            typer.echo(f"skip {path.name}: give --notify-block BLOCK_TYPE/NAME to apply it")
            continue
        source = path
        if block is not None:
            inspected = _prefect(["block", "inspect", block, "--output", "json"], project)
            block_id = json.loads(inspected.stdout)["id"]
            rendered = Path(tempfile.mkdtemp()) / path.name
            rendered.write_text(path.read_text().replace(NOTIFY_PLACEHOLDER, block_id))
            source = rendered
        while _prefect(["automation", "delete", name], project, check=False).returncode == 0:
            pass  # replace every automation of that name: re-running deploy never duplicates them
        _prefect(["automation", "create", "--from-file", str(source)], project)
    if not skip_deploy:
        done = _prefect(["deploy", "--all"], project)
        for line in done.stdout.splitlines():
            if "successfully created" in line or "successfully updated" in line:
                typer.echo("  " + line.strip(" │"))
    typer.echo(f"work pool {pool} ({pool_type}) ready" + ("" if skip_deploy else "; deployments applied")
               + f"; start a worker: prefect worker start --pool {pool}")
