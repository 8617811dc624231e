"""The task runner of the parallel stages (preprocess, palettes, FID features): a thread pool here, Ray on a cluster.

A stage maps one task over its content-defined pieces (``.map``), so every piece is a task run of its own in the
UI, cached by its own content key. Which runner runs those task runs is chosen from the settings **at run time**,
on the worker that runs the flow:

* ``CANVASCRAFT_RAY_ADDRESS`` unset: Prefect's ``ThreadPoolTaskRunner`` with ``CANVASCRAFT_STAGE_WORKERS`` threads
  (default: the CPU count). Decoding (``torchvision.io``) and the brushes' torch kernels release the GIL.
* set: prefect-ray's ``RayTaskRunner`` on that cluster; each piece is a Ray task on any node (it fetches its images
  by the manifest's URIs and writes its piece to the artifact root, so no node needs another's disk).

How the train flow uses it. A flow's task runner is fixed when ``@flow`` is decorated (when ``flows/train.py`` is
imported, and a deployment runs that object), but the settings are only known on the worker at run time, so:

* Threads: the train flow is decorated with ``SettingsThreadPoolTaskRunner``; Prefect enters
  ``flow.task_runner.duplicate()`` when a run starts (prefect/flow_engine.py), and that duplicate is a thread pool
  sized by the settings of that moment. ``run_stage`` runs the stage's body inside the train flow run, so its pieces
  are task runs of the train flow on that pool. Not a subflow per stage: that was the first version, and each
  subflow cost ~1.7 s of Prefect's own (docs/benchmarks.md, "Prefect floor ... 3 stage subflows": 6.1 s against
  1.1 s for the same tasks mapped in the flow), 5 s per train run.
* Ray: ``run_stage`` runs the stage as a subflow given a ``RayTaskRunner`` with ``Flow.with_options``. Ray is then
  connected only while a stage runs, and each piece's Ray task carries the stage's small flow in its serialized
  Prefect context, not the train flow (whose pickle would make every Ray worker import Feast, Inception and the rest
  of the pipeline). The ~1.7 s per subflow is small next to a cluster's work.

A stage called outside such a flow (a test, a stage run on its own) runs as its own flow on the settings' runner.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any, TypeVar

from prefect import Flow
from prefect.context import FlowRunContext
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
    init_kwargs: dict[str, Any] = {
        "runtime_env": {"env_vars": env},
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    address: str | None = settings.ray_address
    if address == "auto":  # RayTaskRunner treats "auto" as "no address" (a new local Ray): pass it to ray.init
        init_kwargs["address"], address = "auto", None
    return _ray_task_runner_class()(address=address, init_kwargs=init_kwargs)


class SettingsThreadPoolTaskRunner(ThreadPoolTaskRunner):
    """A thread pool sized by the settings when each flow run starts (``duplicate`` is what Prefect enters)."""

    def duplicate(self) -> ThreadPoolTaskRunner:  # type: ignore[override]  # a sized pool, not another placeholder
        """A thread pool of ``stage_workers`` threads for this run."""
        return ThreadPoolTaskRunner(max_workers=stage_workers(get_settings()))


def run_stage(stage: Flow[..., R], *args: Any, settings: Settings | None = None, **kwargs: Any) -> R:
    """Run a stage on the settings' runner: in the calling flow run on its thread pool, or as a subflow on Ray."""
    settings = settings or get_settings()
    context = FlowRunContext.get()
    flow_runner = context.flow.task_runner if context is not None and context.flow is not None else None
    if isinstance(flow_runner, SettingsThreadPoolTaskRunner) and not settings.ray_address:
        return stage.fn(*args, **kwargs)  # its pieces become task runs of this flow run, on this run's pool
    return stage.with_options(task_runner=stage_task_runner(settings))(*args, **kwargs)
