"""prefect.yaml applied through Prefect's Python API: one ``RunnerDeployment`` per declared deployment.

Prefect 3.8 applies a prefect.yaml only from its CLI (``prefect deploy``); the code behind it
(``prefect.cli.deploy._core._run_single_deploy``) is private and prompts, prints panels and reads CLI options. So
this module reads the part of prefect.yaml CanvasCraft uses (name, entrypoint, description, tags, parameters,
work_pool, concurrency_limit, cron schedules, triggers, pull steps) into pydantic models that reject any other key
by name, and builds each deployment with the public ``RunnerDeployment.from_entrypoint(...)`` plus the file's pull
steps (``RunnerStorage.to_pull_step``). ``apply()`` creates or updates by ``flow/name`` and replaces the automations
the deployment's triggers own, so applying twice leaves one of each.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from canvascraft.errors import CanvasCraftError

PROJECT_FILE = "prefect.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkPoolRef(_Strict):
    """A deployment's ``work_pool:``: the pool and the job variables its runs override."""

    name: str
    job_variables: dict[str, Any] = Field(default_factory=dict)
    work_queue_name: str | None = None


class ConcurrencyDecl(_Strict):
    """A deployment's ``concurrency_limit:`` mapping."""

    limit: int = Field(ge=1)
    collision_strategy: Literal["ENQUEUE", "CANCEL_NEW"] = "ENQUEUE"


class CronDecl(_Strict):
    """One ``schedules:`` item (cron only: the only kind prefect.yaml uses here)."""

    cron: str
    timezone: str = "UTC"
    active: bool = True


class DeploymentDecl(_Strict):
    """One item of prefect.yaml's ``deployments:``."""

    name: str = Field(min_length=1)
    entrypoint: str = Field(pattern=r"^[\w./-]+\.py:\w+$")
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    work_pool: WorkPoolRef
    concurrency_limit: int | ConcurrencyDecl | None = None
    schedules: list[CronDecl] = Field(default_factory=list)
    triggers: list[dict[str, Any]] = Field(default_factory=list)
    pull: list[dict[str, Any]] | None = None
    enforce_parameter_schema: bool = True

    @property
    def flow_name(self) -> str:
        """The flow's name without loading it: every CanvasCraft flow is named after its function."""
        return self.entrypoint.rsplit(":", 1)[1]

    @property
    def full_name(self) -> str:
        """``flow/deployment``."""
        return f"{self.flow_name}/{self.name}"


class ProjectFile(_Strict):
    """prefect.yaml: project name, shared pull steps, YAML anchors (``definitions``) and the deployments."""

    name: str
    prefect_version: str | None = Field(default=None, alias="prefect-version")
    pull: list[dict[str, Any]] = Field(default_factory=list)
    definitions: dict[str, Any] = Field(default_factory=dict)
    deployments: list[DeploymentDecl]


def read_project(project: Path) -> ProjectFile:
    """prefect.yaml of ``project``; an unsupported or bad key is an error naming the deployment and the field."""
    path = project / PROJECT_FILE
    if not path.is_file():
        raise CanvasCraftError(f"no {PROJECT_FILE} in {project}; run from the CanvasCraft project")
    document = yaml.safe_load(path.read_text()) or {}
    try:
        return ProjectFile.model_validate(document)
    except ValidationError as exc:
        raise CanvasCraftError(
            f"{PROJECT_FILE} is invalid:\n"
            + "\n".join(f"  {_where(document, error['loc'])}: {error['msg']}" for error in exc.errors())
        ) from None


_UNION_BRANCHES = {"int", "ConcurrencyDecl"}  # pydantic names the branch of concurrency_limit in its error locations


def _where(document: dict[str, Any], loc: tuple[Any, ...]) -> str:
    """``deployments[2] (drift_check/fashion-gpu).schedules[0].interval`` from a pydantic error location."""
    parts: list[str] = []
    for i, key in enumerate(loc):
        if isinstance(key, int):
            parts[-1] += f"[{key}]"
            if i == 1 and loc[0] == "deployments":
                item = (document.get("deployments") or [])[key]
                if isinstance(item, dict):
                    parts[-1] += f" ({str(item.get('entrypoint', '?')).rsplit(':', 1)[-1]}/{item.get('name', '?')})"
        elif key not in _UNION_BRANCHES:
            parts.append(str(key))
    return ".".join(parts)


class PullSteps:
    """A ``RunnerStorage`` that only hands prefect.yaml's pull steps to the deployment (workers run them)."""

    def __init__(self, steps: list[dict[str, Any]]) -> None:
        self.steps = steps

    def set_base_path(self, path: Path) -> None:
        """Nothing is pulled at deploy time."""

    @property
    def pull_interval(self) -> int | None:
        """No periodic pull: the worker's pull steps fetch the code per run."""
        return None

    @property
    def destination(self) -> Path:
        """Where the code is: this checkout."""
        return Path.cwd()

    async def pull_code(self) -> None:
        """Nothing to pull: the code is here."""

    def to_pull_step(self) -> list[dict[str, Any]]:
        """The pull steps stored on the deployment."""
        return self.steps


def build_deployment(decl: DeploymentDecl, shared_pull: list[dict[str, Any]]) -> Any:
    """The ``RunnerDeployment`` of one declaration (loads the flow from its entrypoint, relative to the cwd)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.deployments.runner import RunnerDeployment
    from prefect.events import DeploymentTriggerTypes
    from prefect.schedules import Cron
    from pydantic import TypeAdapter

    limit = decl.concurrency_limit
    triggers = []
    for i, trigger in enumerate(decl.triggers):
        try:
            triggers.append(
                TypeAdapter(DeploymentTriggerTypes).validate_python(
                    {"name": f"{decl.name}__automation_{i + 1}", **trigger}
                )
            )
        except ValidationError as exc:
            raise CanvasCraftError(
                f"{PROJECT_FILE} deployment {decl.full_name}: triggers[{i}] is invalid: "
                + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
            ) from None
    deployment = RunnerDeployment.from_entrypoint(
        decl.entrypoint,
        name=decl.name,
        description=decl.description,
        tags=decl.tags,
        parameters=decl.parameters,
        work_pool_name=decl.work_pool.name,
        work_queue_name=decl.work_pool.work_queue_name,
        job_variables=decl.work_pool.job_variables,
        triggers=triggers,
        schedules=[Cron(s.cron, timezone=s.timezone, active=s.active) for s in decl.schedules],
        concurrency_limit=ConcurrencyLimitConfig(**limit.model_dump()) if isinstance(limit, ConcurrencyDecl) else limit,
        enforce_parameter_schema=decl.enforce_parameter_schema,
    )
    deployment.storage = PullSteps(decl.pull if decl.pull is not None else shared_pull)
    return deployment


def apply_deployments(project: Path, declared: ProjectFile) -> dict[str, str]:
    """Create or update every declared deployment; ``{flow/name: deployment id}``."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        for pool in sorted({decl.work_pool.name for decl in declared.deployments}):
            try:
                client.read_work_pool(pool)
            except ObjectNotFound:
                users = [d.full_name for d in declared.deployments if d.work_pool.name == pool]
                raise CanvasCraftError(
                    f"work pool {pool!r} (work_pool.name of {', '.join(users)} in {PROJECT_FILE}) "
                    f"does not exist on the Prefect API; create it first"
                ) from None
    applied: dict[str, str] = {}
    with contextlib.chdir(project):  # entrypoints are relative to the project, as for `prefect deploy`
        for decl in declared.deployments:
            deployment = build_deployment(decl, declared.pull)
            applied[deployment.full_name] = str(deployment.apply())
    return applied


def existing_deployments(declared: ProjectFile) -> dict[str, str]:
    """``{flow/name: id}`` of the declared deployments the API already holds (for a run with --skip-deploy)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    found: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        for decl in declared.deployments:
            with contextlib.suppress(ObjectNotFound):
                found[decl.full_name] = str(client.read_deployment_by_name(decl.full_name).id)
    return found
