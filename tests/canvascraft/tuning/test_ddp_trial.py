"""A multi-worker trial on a real local Ray: a Tune trial driving a 2-worker Ray Train DDP run on CPU (gloo) trains,
checkpoints through Tune, crashes once, resumes on every rank from its Tune checkpoint, and is found by the
per-trial MLflow/sample-grid code like a one-worker trial."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from canvascraft import tracking
from canvascraft.preprocess import ShardSet
from canvascraft.settings import Settings
from canvascraft.spec import load_spec
from canvascraft.trainers import DDPMTrainer, load_trainer
from canvascraft.tuning.search import run_search
from canvascraft.tuning.trial_runs import log_trial_samples

# A real Ray run: most of its time is process start-up (the Tune actor, the Train controller and workers, twice: the
# crash), so the run is as short as the proof allows: 4 steps, a checkpoint and a crash at step 2, the resume to
# step 4. Ray starts once for the folder and Train polls its workers every 0.5 s (conftest.py). Call time on this
# shared 2-core machine, load average 2-10: 56-89 s (12 steps and its own Ray before: 70-119 s). No prefect_server
# mark: it runs in the main pytest process.
pytestmark = pytest.mark.e2e


def ddp_spec(workers: int = 2) -> object:
    return load_spec(
        {
            "name": "ray-ddp",
            "device": "cpu",
            "seed": 7,
            "data": {"source": "s3://bucket/x"},
            "trainer": {
                "name": "ddpm",
                "params": {
                    "sample_size": 8,
                    "channels": 1,
                    "block_out_channels": [16, 32],
                    "layers_per_block": 1,
                    "attention_head_dim": 8,
                    "steps": 4,
                    "batch_size": 16,
                    "warmup_steps": 1,
                    "log_every": 2,
                    "inference_steps": 4,  # the samples only need the right shape: 4 denoising steps, not 50
                },
            },
            "tuner": {
                "num_samples": 1,
                "metric": "loss",
                "mode": "min",
                "resources": {"cpu": 1, "gpu": 0},
                "checkpoint_every": 2,
                "max_failures": 1,
                "workers_per_trial": workers,
            },
        }
    )


def test_two_worker_ddp_trial_trains_checkpoints_and_resumes(
    shard_set: ShardSet, ray_settings: Settings, tmp_path: Path
) -> None:
    pipeline = ddp_spec()
    parent = tracking.start_parent_run(ray_settings, pipeline, "digits64", {"test": "ddp"})
    marker = tmp_path / "crashed-once"
    result = run_search(
        pipeline,
        shard_set,
        None,
        ray_settings,
        parent_run_id=parent,
        dataset_version="digits64",
        extra_config={"_crash_once_at_step": 2, "_crash_marker": str(marker)},
    )
    assert result.plan is not None and result.plan.workers == 2
    (trial,) = result.trials
    assert trial.error is None and trial.metrics["step"] == 4 and trial.metrics["workers"] == 2
    assert marker.read_text() == "2"  # the trial really failed after its step-2 checkpoint...
    assert trial.metrics["resumed_from"] == 2  # ...and Tune restarted it, every rank loading that checkpoint
    assert trial.metrics["images_per_sec"] > 0
    # the best checkpoint is an ordinary DDPM checkpoint, written by rank 0 and copied by Tune
    assert result.best_checkpoint == trial.checkpoint
    manifest = json.loads(Path(result.best_checkpoint, "canvascraft_trainer.json").read_text())
    assert manifest["trainer"] == "ddpm" and manifest["step"] == 4
    trained = load_trainer(result.best_checkpoint, device="cpu")
    assert isinstance(trained, DDPMTrainer) and trained.sample(4, seed=0).shape == (4, 1, 8, 8)
    # Tune kept its own checkpoints of the trial; the scratch Train runs are gone
    trial_dirs = list(Path(result.experiment_path).glob("train_trial_ddp_*"))
    assert len(trial_dirs) == 1 and sorted(p.name for p in trial_dirs[0].glob("checkpoint_*"))
    assert not any((ray_settings.home / "artifacts" / "ray_train").iterdir())
    # the MLflow nested run of the trial is found by its trial id, so its sample grid is logged
    logged = log_trial_samples(result, parent, n=4)
    assert list(logged) == [trial.trial_id]
    artifacts = mlflow.MlflowClient().list_artifacts(logged[trial.trial_id])
    assert [a.path for a in artifacts] == ["samples.png"]
