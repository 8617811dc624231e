"""Ray Tune search on a real local Ray: two trials, best trial by metric, MLflow parent + nested runs, and a trial
crashed mid-run that Tune restarts from its last checkpoint."""

from __future__ import annotations

from pathlib import Path

import mlflow

from canvascraft import tracking
from canvascraft.preprocess import ShardSet
from canvascraft.settings import Settings
from canvascraft.spec import load_spec
from canvascraft.tuning.search import run_search


def spec(name: str, steps: int, checkpoint_every: int, max_failures: int = 0) -> object:
    return load_spec(
        {
            "name": name,
            "device": "auto",
            "seed": 3,
            "data": {"source": "s3://bucket/x"},
            "trainer": {
                "name": "dcgan",
                "params": {
                    "sample_size": 8,
                    "channels": 1,
                    "latent_dim": 8,
                    "g_features": 8,
                    "d_features": 8,
                    "steps": steps,
                    "batch_size": 16,
                    "log_every": 2,
                },
                "search_space": {"learning_rate_g": {"type": "choice", "values": [0.0002, 0.002]}},
            },
            "tuner": {
                "search": "random",
                "scheduler": "fifo",
                "num_samples": 2,
                "metric": "loss_g",
                "mode": "min",
                "resources": {"cpu": 1, "gpu": 0},
                "checkpoint_every": checkpoint_every,
                "max_failures": max_failures,
            },
        }
    )


def test_two_trials_best_by_metric_and_mlflow_runs(shard_set: ShardSet, ray_settings: Settings) -> None:
    pipeline = spec("ray-two", steps=8, checkpoint_every=4)
    parent = tracking.start_parent_run(ray_settings, pipeline, "digits64", {"test": "1"})
    result = run_search(pipeline, shard_set, None, ray_settings, parent_run_id=parent, dataset_version="digits64")
    assert len(result.trials) == 2 and all(t.error is None for t in result.trials)
    finals = {t.checkpoint: t.metrics["loss_g"] for t in result.trials}
    assert result.best_checkpoint in finals and finals[result.best_checkpoint] == min(finals.values())
    assert {t.config["hp"]["learning_rate_g"] for t in result.trials} <= {0.0002, 0.002}
    assert Path(result.best_checkpoint, "canvascraft_trainer.json").is_file()
    nested = mlflow.search_runs(
        search_all_experiments=True, output_format="list", filter_string=f"tags.mlflow.parentRunId = '{parent}'"
    )
    assert len(nested) == 2
    history = mlflow.MlflowClient().get_metric_history(nested[0].info.run_id, "loss_g")
    assert len(history) >= 3  # a loss curve, not just a final value
    assert mlflow.get_run(parent).data.params["dataset_version"] == "digits64"
    # a rerun of the same spec + data restores the finished experiment instead of training again
    again = run_search(pipeline, shard_set, None, ray_settings, parent_run_id=parent, dataset_version="digits64")
    assert again.restored and again.best_checkpoint == result.best_checkpoint


def test_crashed_trial_restarts_from_its_checkpoint(
    shard_set: ShardSet, ray_settings: Settings, tmp_path: Path
) -> None:
    pipeline = spec("ray-crash", steps=12, checkpoint_every=4, max_failures=1)
    marker = tmp_path / "crashed-once"
    result = run_search(
        pipeline,
        shard_set,
        None,
        ray_settings,
        dataset_version="digits64",
        extra_config={"_crash_once_at_step": 4, "_crash_marker": str(marker)},
    )
    assert marker.read_text() == "4"  # one trial really crashed after its step-4 checkpoint
    resumed = [t.metrics["resumed_from"] for t in result.trials]
    assert 4 in resumed  # ...and Tune restarted it from that checkpoint, not from step 0
    assert all(t.metrics["step"] == 12 and t.error is None for t in result.trials)


def test_search_resumes_after_its_driver_is_killed(shard_set: ShardSet, ray_settings: Settings) -> None:
    """The README's resume promise: a driver SIGKILLed mid-search (its whole process group, Ray included); a rerun
    of the same search restores the experiment from the artifact root and every trial continues from the
    checkpoint it had, not from step 0, and the search ends with one best trial."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from canvascraft.tuning.search import experiment_name

    raw = {
        "name": "ray-killed",
        "device": "auto",
        "seed": 5,
        "data": {"source": "s3://bucket/x"},
        # a DDPM step of this size costs 0.02-0.05 s here: 400 steps leave time to kill the driver mid-search
        "trainer": {
            "name": "ddpm",
            "params": {
                "sample_size": 8,
                "channels": 1,
                "block_out_channels": [16, 32],
                "layers_per_block": 1,
                "attention_head_dim": 8,
                "steps": 400,
                "batch_size": 16,
                "warmup_steps": 2,
                "log_every": 10,
            },
            "search_space": {"learning_rate": {"type": "choice", "values": [0.0005, 0.001]}},
        },
        "tuner": {
            "search": "random",
            "scheduler": "fifo",
            "num_samples": 2,
            "metric": "loss",
            "mode": "min",
            "resources": {"cpu": 1, "gpu": 0},
            "checkpoint_every": 20,
        },
    }
    pipeline = load_spec(raw)
    experiment = (
        ray_settings.home / "artifacts" / "ray_results" / experiment_name(pipeline, "digits64", shard_set.stack_key)
    )
    env = {
        **os.environ,
        "CANVASCRAFT_HOME": str(ray_settings.home),
        "CANVASCRAFT_MLFLOW_TRACKING_URI": str(ray_settings.mlflow_tracking_uri),
        "TUNE_GLOBAL_CHECKPOINT_S": "1",
    }  # the experiment state reaches storage every second
    driver = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("search_driver.py")),
            json.dumps(raw),
            shard_set.model_dump_json(),
        ],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            # both trials have checkpointed at least twice, and the experiment state was written after those
            # checkpoints (it is what a restore reads); Tune keeps the newest 2 checkpoints per trial
            newest = [max(t.glob("checkpoint_*"), default=None) for t in experiment.glob("train_trial_*")]
            states = list(experiment.glob("experiment_state-*.json"))
            if (
                len(newest) == 2
                and all(c is not None and c.name >= "checkpoint_000001" for c in newest)
                and states
                and max(p.stat().st_mtime for p in states) > max(c.stat().st_mtime for c in newest if c)
            ):
                break
            assert driver.poll() is None, "the driver ended before it could be killed"
            time.sleep(0.5)
        else:
            raise AssertionError("no checkpoint within 300 s")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert not any(experiment.glob("train_trial_*/checkpoint_000019"))  # killed mid-search (step 400 = 20th)

    result = run_search(pipeline, shard_set, None, ray_settings, dataset_version="digits64")
    assert result.restored
    resumed = sorted(t.metrics["resumed_from"] for t in result.trials)
    print(f"trials resumed from steps {resumed}")
    assert len(resumed) == 2 and all(step >= 20 and step % 20 == 0 for step in resumed), resumed
    assert all(t.metrics["step"] == 400 and t.error is None for t in result.trials)
    finals = {t.checkpoint: t.metrics["loss"] for t in result.trials}
    assert result.best_checkpoint in finals and finals[result.best_checkpoint] == min(finals.values())
