"""The Ray Tune trainable: one trial = one ``Trainer.train`` call that reports and checkpoints through Tune.

Runs inside a Ray worker process: it reads shards from the artifact root by the key in its config, resumes from
``ray.tune.get_checkpoint()`` when Tune restarts it after a failure, and reports via ``ray.tune.report``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from ray import tune

from canvascraft.artifact_root import artifact_root
from canvascraft.errors import CanvasCraftError
from canvascraft.preprocess import read_shard_index
from canvascraft.settings import get_settings
from canvascraft.shard_reader import ShardReader, node_lock
from canvascraft.trainers import TRAINERS  # registers the built-in trainers


class InjectedTrialFailure(RuntimeError):
    """Raised once by a trial configured with ``_crash_once_at_step`` (fault-injection for resume tests)."""


def trial_data(config: dict[str, Any]) -> ShardReader:
    """The trial's training data: the shard set's rows restricted to the training set's kept image ids, streamed.

    Both come from the artifact root by key (never a driver-local path), so a trial runs on any Ray node; the
    node's home keeps a read-through copy that concurrent trials share (fetched once, under a node lock). Rows
    are read from the shard files batch by batch: the trial never holds the dataset, and the selection is an index
    map over the files, not a copy.
    """
    artifacts = artifact_root(get_settings())
    with node_lock(artifacts, config["shards"]):  # the index only: pieces are fetched as the reader opens them
        shard_set = read_shard_index(artifacts, config["shards"])
    if shard_set is None:
        raise CanvasCraftError(f"trial: shard set {artifacts.uri(config['shards'])} is not in the artifact root")
    reader = ShardReader(shard_set, artifacts)
    kept_key = config.get("kept_ids_key")
    if kept_key:
        kept_ids = artifacts.get_json(kept_key)
        if kept_ids is None:
            raise CanvasCraftError(f"trial: training set {artifacts.uri(kept_key)} is not in the artifact root")
        kept = set(kept_ids)
        reader = reader.select([i for i, image_id in enumerate(shard_set.image_ids) if image_id in kept])
    return reader


def train_trial(config: dict[str, Any]) -> None:
    """Tune function trainable: build (or restore) the trainer and train to ``params.steps``."""
    torch.set_num_threads(max(1, int(config.get("cpu_threads", 1))))
    params = {**config["params"], **config.get("hp", {})}
    trainer = TRAINERS.get(config["trainer"])(device=config["device"])
    checkpoint = tune.get_checkpoint()
    resumed_from = 0
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            trainer.load_checkpoint(directory)
        resumed_from = trainer.step
    crash_at = config.get("_crash_once_at_step")
    marker = config.get("_crash_marker")

    def report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        metrics = {**metrics, "resumed_from": resumed_from, "timesteps_total": int(metrics["step"])}
        if checkpoint_dir is not None:
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)))
        else:
            tune.report(metrics)
        if crash_at and marker and metrics["step"] >= crash_at and not os.path.exists(marker):
            Path(marker).write_text(str(metrics["step"]))
            raise InjectedTrialFailure(f"injected failure after step {metrics['step']}")

    trainer.train(params, trial_data(config), report)
