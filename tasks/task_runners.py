"""The task runner of the parallel stages (preprocess, palettes, FID features): a thread pool here, Ray on a cluster.

A stage maps one task over its content-defined pieces (``.map``), so every piece is a task run of its own in the
UI, cached by its own content key. Which runner runs those task runs is chosen from the settings **when the stage
runs**, on the worker that runs the flow:

* ``CANVASCRAFT_RAY_ADDRESS`` unset: Prefect's ``ThreadPoolTaskRunner`` with ``CANVASCRAFT_STAGE_WORKERS`` threads
  (default: the CPU count). Decoding (``torchvision.io``, Pillow) and the brushes' torch ops release the GIL.
* set: prefect-ray's ``RayTaskRunner`` on that cluster; each piece is a Ray task on any node (it fetches its images
  by the manifest's URIs and writes its piece to the artifact root, so no node needs another's disk).

Why a per-stage subflow (``flows/stages.py``) rather than the train flow's own ``task_runner=``: a flow's task
runner is fixed when ``@flow`` is decorated, i.e. when ``flows/train.py`` is imported, and a deployment runs that
decorated object; the worker's settings (where the Ray cluster is) are known only at run time. ``run_stage`` takes
the stage's subflow and gives it the runner of the settings of that moment with ``Flow.with_options``; the rest of
the train flow keeps its default runner, Ray is connected only while a stage runs, and the UI groups each stage's
planning, pieces and assembly under one subflow run.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any, TypeVar

from prefect import Flow
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from canvascraft.settings import Settings, get_settings

R = TypeVar("R")


def stage_workers(settings: Settings) -> int:
    """Threads of a local stage: the setting, else the CPU count."""
    return settings.stage_workers or os.cpu_count() or 1


def _ray_task_runner_class() -> type[Any]:
    """prefect-ray's runner, keeping Prefect's SIGTERM handler (imported only when a cluster is configured)."""
    from prefect_ray import RayTaskRunner

    class StageRayTaskRunner(RayTaskRunner):
        """``RayTaskRunner`` that puts back the SIGTERM handler ``ray.init`` replaces.

        ``ray.init`` installs a handler that calls ``sys.exit`` (ray/_private/worker.py); in a flow run that handler
        is Prefect's cancellation bridge, and a cancel would be recorded as Crashed (as ``connect_ray`` explains).
        """

        def __enter__(self) -> StageRayTaskRunner:
            on_main_thread = threading.current_thread() is threading.main_thread()
            previous = signal.getsignal(signal.SIGTERM) if on_main_thread else None
            try:
                return super().__enter__()
            finally:
                if previous is not None:
                    signal.signal(signal.SIGTERM, previous)

    return StageRayTaskRunner


def stage_task_runner(settings: Settings | None = None) -> TaskRunner[Any]:
    """The runner for a stage's mapped piece tasks: Ray when ``ray_address`` is set, else a thread pool."""
    settings = settings or get_settings()
    if not settings.ray_address:
        return ThreadPoolTaskRunner(max_workers=stage_workers(settings))
    # piece tasks find the artifact root the driver uses; endpoint and keys come from each node's own settings
    # (its environment), never through Ray's GCS, as for Tune trials (canvascraft.tuning.search.connect_ray)
    env = {"CANVASCRAFT_HOME": str(settings.home), "CANVASCRAFT_ARTIFACT_ROOT": settings.resolved_artifact_root}
    init_kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False,
                                   "logging_level": logging.WARNING}
    address: str | None = settings.ray_address
    if address == "auto":  # RayTaskRunner treats "auto" as "no address" (a new local Ray): pass it to ray.init
        init_kwargs["address"], address = "auto", None
    return _ray_task_runner_class()(address=address, init_kwargs=init_kwargs)


def run_stage(stage: Flow[..., R], *args: Any, settings: Settings | None = None, **kwargs: Any) -> R:
    """Run a stage's subflow with the task runner the settings choose now (see the module docstring)."""
    return stage.with_options(task_runner=stage_task_runner(settings))(*args, **kwargs)
