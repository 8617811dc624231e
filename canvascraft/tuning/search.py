"""Run a Ray Tune search for a spec: Tuner over the search space, schedulers, search algorithms, resume.

The experiment name is derived from content (pipeline, dataset version, spec hash, the shard set's brush-stack key,
which changes when a brush's code version does), so rerunning a flow whose
search crashed restores the same Tune experiment (``Tuner.restore``) and continues every unfinished trial from
its last checkpoint instead of starting over.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import ray
from ray import tune
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler
from ray.tune.search import BasicVariantGenerator
from ray.tune.search.optuna import OptunaSearch

from canvascraft.errors import SpecError
from canvascraft.preprocess import ShardSet
from canvascraft.settings import Settings
from canvascraft.spec import PipelineSpec
from canvascraft.tuning.ddp_trial import train_trial_ddp
from canvascraft.tuning.resources import TrialPlan, plan_trials
from canvascraft.tuning.search_space import to_param_space
from canvascraft.tuning.storage import local_checkpoint, tune_storage
from canvascraft.tuning.trainable import train_trial


@dataclass
class TrialSummary:
    """One finished (or failed) trial."""

    trial_id: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    checkpoint: str | None
    error: str | None
    train_seconds: float


@dataclass
class SearchResult:
    """Best trial and every trial of a search."""

    experiment_path: str
    best_checkpoint: str
    best_config: dict[str, Any]
    best_metrics: dict[str, Any]
    trials: list[TrialSummary] = field(default_factory=list)
    wall_seconds: float = 0.0
    restored: bool = False
    plan: TrialPlan | None = None

    @property
    def tune_overhead_seconds(self) -> float:
        """Wall time of the search minus the trials' own training time (upper bound of Tune's cost)."""
        longest = max((t.train_seconds for t in self.trials), default=0.0)
        return max(0.0, self.wall_seconds - longest)


def quiet_tune() -> None:
    """Keep Ray/Tune's console to real warnings (each default yields to a variable the user set).

    - Tune's experiment box, "View detailed results here" and the TensorBoard hint come from its new output engine,
      which ignores ``verbose=0``; the classic reporter honours it (``RAY_AIR_NEW_OUTPUT=0``).
    - "operation took 0.5 s, which may be a performance bottleneck": the MLflow callback's HTTP logging takes that
      long on a loaded 2-core machine; the warning threshold is 5 s (``TUNE_WARN_THRESHOLD_S``) so slow operations
      still warn.
    - The token-auth notice of a local Ray instance (its token is generated and kept by Ray) and Tune's INFO lines.
    """
    from ray.tune.utils.util import warn_if_slow

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if "TUNE_WARN_THRESHOLD_S" not in os.environ:
        warn_if_slow.DEFAULT_THRESHOLD = max(warn_if_slow.DEFAULT_THRESHOLD, 5.0)
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)


# Tune copies these driver variables into every trial actor's runtime_env (ray/tune/execution/class_cache.py), and
# Ray hands a worker its runtime_env on the command line (--serialized-runtime-env-context): any local user could
# read the keys in the process table. Trials take credentials from their own node (settings, a Secret), as the
# pickled storage filesystem does, so the keys are not copied.
_SECRET_VARIABLES = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"})


def keep_keys_out_of_trial_argv() -> None:
    """Stop Tune from copying the driver's AWS keys into each trial's runtime_env (and so into its argv)."""
    from ray.tune.execution import class_cache

    class_cache.ENV_VARS_TO_PROPAGATE = set(class_cache.ENV_VARS_TO_PROPAGATE) - _SECRET_VARIABLES


def connect_ray(settings: Settings) -> None:
    """Connect to ``settings.ray_address`` (a cluster; token auth via RAY_AUTH_MODE=token) or start local Ray.

    ``ray.init`` replaces the process's SIGTERM handler with one that calls ``sys.exit`` (ray/_private/worker.py,
    "terminate any signal before connecting driver"). Inside a Prefect flow run that handler is Prefect's
    cancellation bridge: a worker cancels a run by SIGTERM, and with Ray's handler the engine saw a SystemExit and
    recorded the cancel as Crashed. The handler that was there before is put back, so a cancel stays a cancel
    (the local Ray cluster and its trial processes still stop at interpreter exit through Ray's atexit shutdown).
    """
    keep_keys_out_of_trial_argv()
    if ray.is_initialized():
        return
    quiet_tune()
    # trials find the artifact root the driver uses; endpoint and keys come from each node's own settings
    # (the embedded stack's state on this machine, a Secret/envFrom on a cluster), never through Ray's GCS
    env = {"CANVASCRAFT_HOME": str(settings.home), "CANVASCRAFT_ARTIFACT_ROOT": settings.resolved_artifact_root}
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if on_main_thread else None
    ray.init(
        address=settings.ray_address or None,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": env},
        ignore_reinit_error=True,
        logging_level=logging.WARNING,  # not "Started a local Ray instance"
    )
    if on_main_thread and previous is not None:
        # the very same handler object: Prefect acknowledges a cancel only while its own handler is installed
        signal.signal(signal.SIGTERM, previous)


def _descendants(root: int) -> list[int]:
    """Every live descendant pid of ``root`` (from /proc; empty where there is none)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else []:
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def stop_hard() -> None:
    """SIGKILL the local Ray node and leave at once (the end of a cancel whose clean shutdown cannot finish).

    A cancel signals the flow run's whole process group, which includes the local Ray node: its raylet stops while
    trial workers (busy in C++) keep running, and Tune's cleanup then waits on placement-group removal that can no
    longer complete. The trials' checkpoints are on disk; Tune restores the search on the next run.

    Under Prefect's runner this process leads its own process group (the runner starts each flow run in a new
    session and waits until the whole group is gone), and Ray workers whose raylet already stopped are no longer
    our descendants: the group goes. Run by hand (in a shell's job), only this process's descendants go.
    """
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    for pid in _descendants(os.getpid()):
        with contextlib.suppress(OSError):  # gone already
            os.kill(pid, signal.SIGKILL)
    os._exit(128 + signal.SIGTERM)


def experiment_name(spec: PipelineSpec, dataset_version: str, stack_key: str) -> str:
    """Content-derived name: the resume key of a crashed search (a new brush version trains anew)."""
    return f"{spec.name}-{dataset_version}-{spec.spec_hash()}-{stack_key[:12]}"


def build_tune_config(spec: PipelineSpec, max_concurrent: int | None = None) -> tune.TuneConfig:
    """Metric, mode, budget, search algorithm (random | optuna) and scheduler (fifo | asha | hyperband).

    ``max_concurrent`` caps concurrent trials when the spec sets no ``max_concurrent_trials`` (multi-worker trials).
    """
    tuner = spec.tuner
    limit = tuner.max_concurrent_trials or max_concurrent
    if tuner.search == "optuna":
        search_alg: Any = OptunaSearch(seed=spec.seed)
    else:
        # Tune applies TuneConfig.max_concurrent_trials only to a Searcher (it wraps it in a ConcurrencyLimiter) and
        # ignores it, with a warning, for a BasicVariantGenerator: that one takes the limit itself
        search_alg = BasicVariantGenerator(random_state=spec.seed, max_concurrent=limit or 0)
    max_t = int((spec.trainer.params if spec.trainer else {}).get("steps", 1000))
    if tuner.scheduler == "asha":
        scheduler: Any = ASHAScheduler(time_attr="timesteps_total", max_t=max_t, grace_period=max(1, max_t // 8))
    elif tuner.scheduler == "hyperband":
        scheduler = HyperBandScheduler(time_attr="timesteps_total", max_t=max_t)
    else:
        scheduler = FIFOScheduler()
    return tune.TuneConfig(
        metric=tuner.metric,
        mode=tuner.mode,
        num_samples=tuner.num_samples,
        search_alg=search_alg,
        scheduler=scheduler,
        max_concurrent_trials=limit if tuner.search == "optuna" else None,
    )


def run_search(
    spec: PipelineSpec,
    shard_set: ShardSet,
    kept_ids_key: str | None,
    settings: Settings,
    *,
    parent_run_id: str | None = None,
    dataset_version: str,
    extra_config: dict[str, Any] | None = None,
) -> SearchResult:
    """Run (or resume) the spec's search on Ray and return the best trial's checkpoint and config."""
    if spec.trainer is None:
        raise SpecError(
            "trainer: the spec has no trainer section; allowed trainers are registered in canvascraft.trainers"
        )
    started = time.perf_counter()
    connect_ray(settings)
    cluster = ray.cluster_resources()
    cluster_cpus, cluster_gpus = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    plan = plan_trials(
        spec.device,
        spec.tuner.resources.cpu,
        spec.tuner.resources.gpu,
        cluster_gpus,
        workers=spec.tuner.workers_per_trial,
        cluster_cpus=cluster_cpus,
    )
    name = experiment_name(spec, dataset_version, shard_set.stack_key)
    storage_path, storage_fs = tune_storage(settings)
    checkpoints = settings.home / "cache" / "checkpoints"
    params = {**spec.trainer.params, "seed": spec.seed, "checkpoint_every": spec.tuner.checkpoint_every}
    param_space = {
        "trainer": spec.trainer.name,
        "params": params,
        "hp": to_param_space(spec.trainer.search_space),
        "device": plan.device,
        "cpu_threads": max(1, int(plan.cpu)),
        "shards": shard_set.key,  # artifact-root keys: a trial on any node fetches them
        "kept_ids_key": kept_ids_key,
        **(extra_config or {}),
    }
    if plan.workers > 1:  # a Ray Train run of plan.workers DDP workers per trial (tuning/ddp_trial.py)
        param_space.update(workers=plan.workers, worker_resources=plan.worker_resources(), experiment=name)
    trainable = tune.with_resources(train_trial_ddp if plan.workers > 1 else train_trial, plan.resources())
    experiment_path = f"{storage_path}/{name}"
    restored = tune.Tuner.can_restore(experiment_path, storage_filesystem=storage_fs)
    if restored:  # possibly written by another driver on another machine: the artifact root holds it
        tuner = tune.Tuner.restore(
            experiment_path, trainable, resume_unfinished=True, resume_errored=True, storage_filesystem=storage_fs
        )
    else:
        callbacks: list[Any] = []
        if parent_run_id is not None:
            callbacks.append(
                MLflowLoggerCallback(
                    tracking_uri=settings.resolved_mlflow_tracking_uri,
                    experiment_name=spec.name,
                    tags={"mlflow.parentRunId": parent_run_id, "canvascraft.pipeline": spec.name},
                )
            )
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=build_tune_config(spec, plan.concurrent_trials(cluster_cpus, cluster_gpus)),
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage_path,
                storage_filesystem=storage_fs,
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                failure_config=tune.FailureConfig(max_failures=spec.tuner.max_failures),
                callbacks=callbacks,
                verbose=0,
            ),
        )
    grid = tuner.fit()
    trials = []
    for result in (grid[index] for index in range(len(grid))):  # ResultGrid declares no __iter__
        history = result.metrics_dataframe
        # time_this_iter_s: seconds between two reports of the trial (training + its checkpoint writes)
        has_times = history is not None and "time_this_iter_s" in history
        train_seconds = float(history["time_this_iter_s"].sum()) if history is not None and has_times else 0.0
        trials.append(
            TrialSummary(
                trial_id=str(result.metrics.get("trial_id", "")) if result.metrics else "",
                config=result.config or {},
                metrics=dict(result.metrics or {}),
                checkpoint=local_checkpoint(result.checkpoint, checkpoints) if result.checkpoint else None,
                error=str(result.error) if result.error else None,
                train_seconds=train_seconds,
            )
        )
    best = grid.get_best_result(metric=spec.tuner.metric, mode=spec.tuner.mode, scope="last")
    if best.checkpoint is None:
        errors = "; ".join(t.error for t in trials if t.error) or "no trial reported a checkpoint"
        raise SpecError(f"tuner: no trial produced a checkpoint ({errors})")
    return SearchResult(
        experiment_path=str(experiment_path),
        best_checkpoint=local_checkpoint(best.checkpoint, checkpoints),
        best_config=best.config or {},
        best_metrics=dict(best.metrics or {}),
        trials=trials,
        wall_seconds=round(time.perf_counter() - started, 3),
        restored=restored,
        plan=plan,
    )
