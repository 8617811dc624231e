"""One local Ray and one shard set for every Ray test of this folder.

``connect_ray`` starts Ray once per process, with the home of the first settings it sees in every trial's
environment: the tests share one home, and Ray's start (~9 s here, more under load) is paid once for the folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

from canvascraft.artifact_root import artifact_root
from canvascraft.preprocess import ShardSet
from canvascraft.settings import Settings


@pytest.fixture(scope="package")
def ray_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings whose home (artifact root, MLflow sqlite) every Ray test of the folder uses; Ray stops at the end."""
    import ray

    home = tmp_path_factory.mktemp("rayhome")
    with pytest.MonkeyPatch.context() as env:
        # Ray Train's controller collects the workers' reports when it polls them, every 2 s by default: each report
        # of a DDP trial waited up to that. Set before Ray starts, so its processes inherit it; an explicit value wins.
        env.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5"))
        yield Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
        ray.shutdown()


@pytest.fixture(scope="package")
def shard_set(tmp_path_factory: pytest.TempPathFactory, ray_settings: Settings) -> ShardSet:
    """64 real digits at 8x8, normalised to [-1, 1], published as a shard set to the settings' artifact root."""
    from safetensors.torch import save_file
    from sklearn.datasets import load_digits

    images = torch.tensor(load_digits().images[:64], dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    folder = tmp_path_factory.mktemp("shards")
    save_file({"images": images.contiguous()}, str(folder / "shard-00000.safetensors"))
    shard_set = ShardSet(
        key="shards/digits64/k",
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
