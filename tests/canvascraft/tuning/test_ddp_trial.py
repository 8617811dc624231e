"""A multi-worker trial on a real local Ray: a Tune trial driving a 2-worker Ray Train DDP run on CPU (gloo) trains,
checkpoints through Tune, crashes once, resumes on every rank from its Tune checkpoint, and is found by the
per-trial MLflow/sample-grid code like a one-worker trial."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import torch

from canvascraft import tracking
from canvascraft.artifact_root import artifact_root
from canvascraft.preprocess import ShardSet
from canvascraft.settings import Settings
from canvascraft.spec import load_spec
from canvascraft.trainers import DDPMTrainer, load_trainer
from canvascraft.tuning.search import run_search
from canvascraft.tuning.trial_runs import log_trial_samples

# A real Ray run: 5-6.5 min on this 2-core machine at load average 10-14 (shared), most of it process start-up of
# the Tune actor, the Train controller and workers (twice: the crash). No prefect_server mark, so it
# runs in the main pytest process of `make test`.
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ray_settings(tmp_path_factory: pytest.TempPathFactory):
    import ray

    home = tmp_path_factory.mktemp("rayhome-ddp")
    settings = Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    yield settings
    ray.shutdown()


@pytest.fixture(scope="module")
def shard_set(tmp_path_factory: pytest.TempPathFactory, ray_settings: Settings) -> ShardSet:
    """64 real digits at 8x8 in [-1, 1], published as a shard set to the settings' artifact root."""
    from safetensors.torch import save_file
    from sklearn.datasets import load_digits

    images = torch.tensor(load_digits().images[:64], dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    folder = tmp_path_factory.mktemp("shards-ddp")
    save_file({"images": images.contiguous()}, str(folder / "shard-00000.safetensors"))
    shard_set = ShardSet(
        key="shards/digits64-ddp/k",
        path=str(folder),
        dataset_version="digits64",
        stack_key="k",
        count=64,
        shape=[1, 8, 8],
        shards=["shard-00000.safetensors"],
        image_ids=[f"id{i}" for i in range(64)],
        labels=[None] * 64,
        brushes=[],
        seed=0,
    )
    (folder / "index.json").write_text(shard_set.model_dump_json())
    artifact_root(ray_settings).put_folder(shard_set.key, folder)
    return shard_set


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
                    "steps": 12,
                    "batch_size": 16,
                    "warmup_steps": 2,
                    "log_every": 2,
                },
            },
            "tuner": {
                "num_samples": 1,
                "metric": "loss",
                "mode": "min",
                "resources": {"cpu": 1, "gpu": 0},
                "checkpoint_every": 4,
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
        extra_config={"_crash_once_at_step": 4, "_crash_marker": str(marker)},
    )
    assert result.plan is not None and result.plan.workers == 2
    (trial,) = result.trials
    assert trial.error is None and trial.metrics["step"] == 12 and trial.metrics["workers"] == 2
    assert marker.read_text() == "4"  # the trial really failed after its step-4 checkpoint...
    assert trial.metrics["resumed_from"] == 4  # ...and Tune restarted it, every rank loading that checkpoint
    assert trial.metrics["images_per_sec"] > 0
    # the best checkpoint is an ordinary DDPM checkpoint, written by rank 0 and copied by Tune
    assert result.best_checkpoint == trial.checkpoint
    manifest = json.loads(Path(result.best_checkpoint, "canvascraft_trainer.json").read_text())
    assert manifest["trainer"] == "ddpm" and manifest["step"] == 12
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
