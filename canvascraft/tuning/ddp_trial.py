"""Multi-worker trials: a Tune trial that runs a Ray Train ``TorchTrainer`` (DDP) and keeps the one-worker contract.

Ray 2.60 runs Train inside Tune as the Train V2 user guide "Hyperparameter Tuning with Ray Tune" describes: the Tune
function trainable is the Train *driver* (it builds a ``TorchTrainer`` and calls ``fit``); ``Tuner(trainer)`` is
deprecated. The contract of a one-worker trial (``trainable.train_trial``) is kept:

- checkpoints are *Tune* checkpoints (``tune.report(..., checkpoint=...)``): ``result.checkpoint``, ``num_to_keep``,
  ``tune.get_checkpoint()`` on a restarted trial and ``Tuner.restore`` after a killed driver all work unchanged;
- metrics carry ``step``, ``timesteps_total`` and ``resumed_from``; the crash injection of the resume tests works.

Flow: Train workers run ``worker_loop`` (rank 0's checkpoint goes through ``ray.train.report`` into a scratch Train
run under ``<artifact root>/ray_train``); the Train controller's ``ForwardToTune`` callback hands each report to
this trial through a ``Mailbox`` actor and waits until the trial has ``tune.report``-ed it (Tune copies the
checkpoint), so Train may then drop its copy (it keeps one). The scratch run is deleted when the trial ends: Tune's
checkpoints are the only resume source (Train-level retries are off; Tune's ``max_failures`` restarts the trial).
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import ray
from ray import tune

from canvascraft.errors import CanvasCraftError
from canvascraft.settings import get_settings
from canvascraft.tuning.storage import RESULTS, tune_storage

# The trainers (torch, diffusers) are imported where they run, in the Train workers: the Tune actor of a multi-worker
# trial only drives the run, and its start-up stays short.

TRAIN_RUNS = "ray_train"  # scratch Train runs, a sibling of ray_results in the artifact root


class TrialStopped(CanvasCraftError):
    """The Tune trial driving a Train run ended (stopped, failed or cancelled): the Train run stops too."""


def worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: the data-parallel trainer, resumed from the trial's Tune checkpoint, trained to the end."""
    import ray.train
    import ray.train.torch
    import torch

    from canvascraft.trainers import TRAINERS
    from canvascraft.trainers.distributed import distributed_class
    from canvascraft.tuning.trainable import trial_data

    context = ray.train.get_context()
    rank = context.get_world_rank()
    torch.set_num_threads(max(1, int(config.get("cpu_threads", 1))))
    params = {**config["params"], **config.get("hp", {})}
    trainer = distributed_class(TRAINERS.get(config["trainer"]))(device=ray.train.torch.get_device())
    resumed_from = 0
    if config.get("_resume") is not None:  # every rank loads the same checkpoint
        with ray.train.Checkpoint(**config["_resume"]).as_directory() as directory:
            trainer.load_checkpoint(directory)
        resumed_from = trainer.step

    def report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        metrics = {
            **metrics,
            "resumed_from": resumed_from,
            "timesteps_total": int(metrics["step"]),
            "workers": context.get_world_size(),
        }
        # every rank reports (Train's report is a barrier); only rank 0 wrote a checkpoint
        checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if rank == 0 and checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint)

    trainer.train(params, trial_data(config), report)


class Mailbox:
    """One report at a time from the Train controller to the Tune trial, and the trial's answer back (async actor)."""

    def __init__(self) -> None:
        self.reports: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
        self.answers: asyncio.Queue[bool] = asyncio.Queue(maxsize=1)

    async def deliver(self, item: Any) -> bool:
        """Controller side: hand over ``item`` (None: the run ended) and wait for the answer (False: stop)."""
        await self.reports.put(item)
        return True if item is None else await self.answers.get()

    async def receive(self) -> Any:
        """Trial side: the next report."""
        return await self.reports.get()

    async def answer(self, keep_going: bool) -> None:
        """Trial side: the report is in Tune (True), or the trial ended (False)."""
        await self.answers.put(keep_going)


class ForwardToTune:
    """Ray Train ``UserCallback`` (runs in the Train controller): hand rank 0's report to the Tune trial and wait."""

    def __init__(self, mailbox: Any) -> None:
        self.mailbox = mailbox

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        """Blocks until the trial reported it to Tune (so Train may delete its copy next); raises if it ended."""
        if not ray.get(self.mailbox.deliver.remote((metrics[0], checkpoint))):
            raise TrialStopped("the Tune trial driving this Train run ended; stopping its workers")

    def after_exception(self, run_context: Any, worker_exceptions: dict[int, Exception]) -> None:
        """Worker errors reach the trial through ``fit`` raising."""


def _user_callback(mailbox: Any) -> Any:
    """``ForwardToTune`` as a ``ray.train.UserCallback`` subclass (Train accepts only those in its callbacks)."""
    from ray.train.v2.api.callback import UserCallback

    cls = type("ForwardToTuneCallback", (ForwardToTune, UserCallback), {"__module__": __name__})
    return cls(mailbox)


def train_trial_ddp(config: dict[str, Any]) -> None:
    """Tune function trainable of a multi-worker trial: drive a ``TorchTrainer`` and report its results to Tune."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.train.v2._internal.constants import V2_ENABLED_ENV_VAR, is_v2_enabled

    if not is_v2_enabled():
        raise CanvasCraftError(
            f"tuner.workers_per_trial > 1 runs Ray Train V2 inside Tune: unset {V2_ENABLED_ENV_VAR} "
            f"or set it to 1 (it is {os.environ.get(V2_ENABLED_ENV_VAR)!r})"
        )
    checkpoint = tune.get_checkpoint()
    resume = {"path": checkpoint.path, "filesystem": checkpoint.filesystem} if checkpoint is not None else None
    workers = int(config["workers"])
    use_gpu = float(config["worker_resources"].get("GPU", 0)) > 0
    storage_path, storage_fs = train_storage()
    run_name = f"{config['experiment']}-{tune.get_context().get_trial_id()}"  # unique on the artifact root
    _remove_run(storage_path, storage_fs, run_name)  # a run left by a killed attempt must not be restored by Train
    mailbox: Any = ray.remote(num_cpus=0)(Mailbox).remote()  # an async actor holding no CPU
    trainer = TorchTrainer(
        worker_loop,
        train_loop_config={**config, "_resume": resume},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, use_gpu=use_gpu, resources_per_worker=dict(config["worker_resources"])
        ),
        run_config=ray.train.RunConfig(
            name=run_name,
            storage_path=storage_path,
            storage_filesystem=storage_fs,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            failure_config=ray.train.FailureConfig(max_failures=0),  # Tune restarts the trial from its checkpoint
            callbacks=[_user_callback(mailbox)],
        ),
    )
    failure: list[Exception] = []

    def fit() -> None:
        try:
            trainer.fit()
        except Exception as exc:  # noqa: BLE001 (re-raised in the trial's thread below)
            failure.append(exc)
        finally:
            mailbox.deliver.remote(None)  # ends the loop below (not awaited: after a stop nobody may read it)

    runner = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
    runner.start()
    crash_at, marker = config.get("_crash_once_at_step"), config.get("_crash_marker")
    stopped = True
    try:
        while (item := ray.get(mailbox.receive.remote())) is not None:
            metrics, persisted = item
            if persisted is not None:  # Tune copies it from the Train run into the trial's own checkpoint folder
                tune.report(metrics, checkpoint=tune.Checkpoint(path=persisted.path, filesystem=persisted.filesystem))
            else:
                tune.report(metrics)
            if crash_at and marker and metrics["step"] >= crash_at and not os.path.exists(marker):
                from canvascraft.tuning.trainable import InjectedTrialFailure

                Path(marker).write_text(str(metrics["step"]))
                raise InjectedTrialFailure(f"injected failure after step {metrics['step']}")
            mailbox.answer.remote(True)
        stopped = False
    finally:
        if stopped and runner.is_alive():
            mailbox.answer.remote(False)  # the controller's callback raises: the Train run and its workers stop
            runner.join(timeout=120)
        _remove_run(storage_path, storage_fs, run_name)
    runner.join()
    if failure:
        raise failure[0]


def train_storage() -> tuple[str, Any]:
    """Storage path and filesystem of the scratch Train runs: ``<artifact root>/ray_train`` (shared by all nodes)."""
    path, fs = tune_storage(get_settings())
    root = path[: -len(RESULTS)] + TRAIN_RUNS
    if fs is None:
        Path(root).mkdir(parents=True, exist_ok=True)
    return root, fs


def _remove_run(storage_path: str, storage_fs: Any, name: str) -> None:
    """Delete a scratch Train run folder (absent is fine)."""
    import pyarrow.fs as pafs

    fs = storage_fs or pafs.LocalFileSystem()
    path = f"{storage_path}/{name}"
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)
