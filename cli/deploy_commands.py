"""``canvascraft deploy``: work pool, deployments and automations on the Prefect API, through Prefect's Python client.

In order: the work pool ``gpu-pool`` from ``deployments/work-pools/<type>.json`` (created, or its base job template
updated); every deployment of prefect.yaml (``cli/prefect_project.py``: ``RunnerDeployment`` + ``apply()``; Prefect
has no public Python entry that applies a prefect.yaml); then ``deployments/automations/`` by name
(``cli/automation_files.py``), the notification templates once per pipeline: the pipelines whose specs the
deployments run (plus ``--pipeline``), each to its spec's ``notifications.block``, else ``--notify-block``, else
``CANVASCRAFT_NOTIFY_BLOCK``, for the events its ``notifications.events`` lists (an unlisted event's automation is
removed). A pipeline with no block keeps whatever notification automations it has. Running it twice leaves one of
each object.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

POOL_TEMPLATES = {
    "process": "deployments/work-pools/process.json",
    "kubernetes": "deployments/work-pools/kubernetes-gpu.json",
}
EXTRA_PIPELINES = typer.Option(
    None,
    "--pipeline",
    help="Also apply the notification automations of this spec (a pipeline prefect.yaml does not deploy). Repeatable.",
)


def apply_work_pool(client: Any, name: str, pool_type: str, template_path: Path) -> str:
    """Create the work pool or update its base job template; 'created' or 'updated'."""
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    from canvascraft.errors import CanvasCraftError

    try:
        template = json.loads(template_path.read_text())
    except (OSError, ValueError) as exc:
        raise CanvasCraftError(f"work pool template {template_path.name}: {exc}") from None
    try:
        existing = client.read_work_pool(name)
    except ObjectNotFound:
        client.create_work_pool(WorkPoolCreate(name=name, type=pool_type, base_job_template=template))
        return "created"
    if existing.type != pool_type:
        raise CanvasCraftError(
            f"work pool {name!r} is of type {existing.type!r}, not {pool_type!r} (--pool-type); a "
            f"pool's type cannot change: delete it (prefect work-pool delete {name}) or pass "
            f"--pool-type {existing.type}"
        )
    client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
    return "updated"


def pipelines_to_notify(project: Path, declared: Any, extra_specs: list[Path], default_block: str | None) -> list[Any]:
    """The pipelines the notification templates are rendered for: the specs of the deployments, then ``--pipeline``;
    each with the deployments that run it (train, drift_check, and the rollback of its model)."""
    from canvascraft.spec import load_spec
    from cli.automation_files import Pipeline

    by_name: dict[str, Pipeline] = {}
    sources = [
        (d.full_name, d.parameters["spec"]) for d in declared.deployments if isinstance(d.parameters.get("spec"), str)
    ] + [(None, str(p.resolve())) for p in extra_specs]
    for deployment, source in sources:
        spec = load_spec(Path(source) if Path(source).is_absolute() else project / source)
        pipeline = by_name.setdefault(
            spec.name,
            Pipeline(
                spec.name,
                spec.publish.registered_model if spec.publish else None,
                spec.notifications.block or default_block,
                tuple(spec.notifications.events),
            ),
        )
        if deployment:
            pipeline.deployments.append(deployment)
    for decl in declared.deployments:  # a rollback deployment belongs to the pipelines publishing its model
        model = decl.parameters.get("registered_model")
        for pipeline in by_name.values():
            if model and pipeline.registered_model == model:
                pipeline.deployments.append(decl.full_name)
    return list(by_name.values())


def plan_automations(files: list[Any], pipelines: list[Any]) -> tuple[list[tuple[Any, str]], list[tuple[str, str]]]:
    """(automation, report suffix) to apply and (name, reason) to remove, for deployments/automations/."""
    from cli.automation_files import AUTOMATIONS_DIR, render_for, to_automation
    from tasks.notify import automation_name

    apply = [(to_automation(f.document, str(AUTOMATIONS_DIR / f.path.name)), "") for f in files if not f.notify_event]
    remove: list[tuple[str, str]] = []
    for pipeline in (p for p in pipelines if p.block_id):
        for file in (f for f in files if f.notify_event):
            listed = file.notify_event in pipeline.events
            automation = render_for(file, pipeline, pipeline.block_id) if listed else None
            if automation is not None:
                apply.append((automation, f" -> {pipeline.block}"))
                continue
            subject = pipeline.registered_model if file.notify_event == "rollback" else pipeline.name
            if subject:
                why = "not in its notifications.events" if not listed else "nothing to match"
                remove.append((automation_name(file.notify_event, subject), why))
    return apply, remove


def apply_automations(client: Any, files: list[Any], pipelines: list[Any]) -> list[str]:
    """Apply deployments/automations/ (notification templates per pipeline); one report line per automation."""
    from cli.automation_files import apply_by_name, remove_by_name

    lines = [
        f"notifications of {p.name} left as they are: no block (spec notifications.block, --notify-block or "
        "CANVASCRAFT_NOTIFY_BLOCK)"
        for p in pipelines
        if not p.block_id
    ]
    apply, remove = plan_automations(files, pipelines)
    applied: set[str] = set()
    for automation, suffix in apply:
        if automation.name in applied:  # a model shared by two pipelines: the first one's channel
            continue
        applied.add(automation.name)
        lines.append(f"automation {automation.name} {apply_by_name(client, automation)}{suffix}")
    for name, why in remove:
        if name not in applied and remove_by_name(client, name):
            lines.append(f"automation {name} removed ({why})")
    return lines


def deploy_command(
    pool_type: str = typer.Option(
        "process",
        "--pool-type",
        help="process (local worker) | kubernetes (GPU nodes; the template requests nvidia.com/gpu).",
    ),
    notify_block: str | None = typer.Option(
        None,
        "--notify-block",
        help="Notification block TYPE/NAME (e.g. "
        "custom-webhook/canvascraft-alerts) for pipelines whose spec names none; "
        "default CANVASCRAFT_NOTIFY_BLOCK.",
    ),
    pipelines: list[Path] | None = EXTRA_PIPELINES,
    skip_deploy: bool = typer.Option(False, "--skip-deploy", help="Only the pool and automations."),
) -> None:
    """Create/update the work pool, every deployment of prefect.yaml, then deployments/automations/."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from canvascraft.errors import CanvasCraftError
    from canvascraft.settings import get_settings
    from canvascraft.stack.services import (
        WORK_POOL as pool,  # the pool every deployment in prefect.yaml names
    )
    from cli.automation_files import load_files, notification_block_id
    from cli.common import project_dir
    from cli.prefect_project import (
        apply_deployments,
        existing_deployments,
        read_project,
    )

    if pool_type not in POOL_TEMPLATES:
        raise CanvasCraftError(f"--pool-type {pool_type!r} is not allowed; allowed values: {', '.join(POOL_TEMPLATES)}")
    project = project_dir()
    declared = read_project(project)
    settings = get_settings()
    api = os.environ.get("PREFECT_API_URL") or settings.prefect_api_url  # else the embedded server of `stack up`
    if not api:
        raise CanvasCraftError("no Prefect API: set PREFECT_API_URL or start one with `canvascraft stack up`")
    os.environ["PREFECT_API_URL"] = api  # the error handler names it when it does not answer
    files = load_files(project)
    notify = pipelines_to_notify(project, declared, pipelines or [], notify_block or settings.notify_block)
    with temporary_settings({PREFECT_API_URL: api}):
        with get_client(sync_client=True) as client:  # every block and file checked before anything is applied
            for slug in sorted({p.block for p in notify if p.block}):
                users = [p for p in notify if p.block == slug]
                block_id = notification_block_id(client, slug, "for " + ", ".join(p.name for p in users))
                for pipeline in users:
                    pipeline.block_id = block_id
            plan_automations(files, [replace(p, deployment_ids=["check"]) for p in notify])
            typer.echo(
                f"work pool {pool} ({pool_type}) "
                f"{apply_work_pool(client, pool, pool_type, project / POOL_TEMPLATES[pool_type])}"
            )
        ids = existing_deployments(declared) if skip_deploy else apply_deployments(project, declared)
        for full_name, deployment_id in ids.items():
            typer.echo(f"deployment {full_name} {'exists' if skip_deploy else 'applied'} ({deployment_id})")
        for pipeline in notify:
            pipeline.deployment_ids = [ids[name] for name in pipeline.deployments if name in ids]
        with get_client(sync_client=True) as client:
            for line in apply_automations(client, files, notify):
                typer.echo(line)
    typer.echo(f"done; start a worker: prefect worker start --pool {pool}")
