"""``tuner.workers_per_trial``: spec validation against the trainer and ``tuner.resources``, the plan of a
multi-worker trial against the cluster, and spec hashes of older specs left unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from canvascraft.errors import SpecError
from canvascraft.hashing import stable_hash
from canvascraft.spec import load_spec
from canvascraft.tuning.resources import DRIVER_MEMORY, plan_trials


def raw(trainer: str = "ddpm", workers: int | None = 2, device: str = "cpu", **tuner: Any) -> dict[str, Any]:
    params = {"sample_size": 8, "channels": 1, "batch_size": 16}
    if trainer == "ddpm":
        params.update(block_out_channels=[16, 32], layers_per_block=1, warmup_steps=2, steps=10)
    spec: dict[str, Any] = {
        "name": "ddp-spec",
        "device": device,
        "data": {"source": "s3://bucket/x"},
        "trainer": {"name": trainer, "params": params},
        "tuner": dict(tuner),
    }
    if workers is not None:
        spec["tuner"]["workers_per_trial"] = workers
    return spec


def test_old_specs_keep_their_hash_and_more_workers_change_it() -> None:
    old = load_spec(raw(workers=None))
    assert old.tuner.workers_per_trial == 1
    assert load_spec(raw(workers=1)).spec_hash() == old.spec_hash()
    # the hash an older spec had: its dump without the new field
    dump = old.model_dump(mode="json", exclude={"notifications"})
    del dump["tuner"]["workers_per_trial"]
    assert old.spec_hash() == stable_hash(dump)
    assert load_spec(raw(workers=2)).spec_hash() != old.spec_hash()


def test_valid_multi_worker_spec() -> None:
    assert load_spec(raw(workers=2, resources={"cpu": 1, "gpu": 0})).tuner.workers_per_trial == 2
    assert load_spec(raw(workers=4, device="cuda", resources={"cpu": 2, "gpu": 1})).tuner.resources.gpu == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (raw(workers=0), r"tuner.workers_per_trial: Input should be greater than or equal to 1 \(got 0\)"),
        (
            raw("dcgan"),
            (
                r"tuner.workers_per_trial=2: trainer 'dcgan' cannot train data-parallel \(its step alternates two "
                r"optimizers.*allowed trainers with workers_per_trial > 1: ddpm \(or set workers_per_trial: 1\)"
            ),
        ),
        (
            raw(workers=3),
            (
                r"tuner.workers_per_trial=3: trainer.params.batch_size \(the global batch, split evenly over the "
                r"workers\) must be a multiple of 3; got 16"
            ),
        ),
        (
            raw(resources={"cpu": 1, "gpu": 0.5}),
            (
                r"tuner.resources.gpu: 0.5 with tuner.workers_per_trial=2: each data-parallel worker drives one whole "
                r"GPU .*allowed values: 0, 1"
            ),
        ),
        (
            raw(device="cuda"),
            (
                r"tuner.resources.gpu: device 'cuda' with tuner.workers_per_trial=2 needs one GPU per worker; allowed "
                r"values: 1 \(or device auto, cpu\)"
            ),
        ),
    ],
)
def test_invalid_combinations_name_field_and_allowed_values(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_spec(spec)


def test_searched_batch_sizes_must_split_evenly() -> None:
    spec = raw(workers=2)
    spec["trainer"]["search_space"] = {"batch_size": {"type": "choice", "values": [16, 24, 9]}}
    with pytest.raises(SpecError, match="must be a multiple of 2; got 9"):
        load_spec(spec)
    spec["trainer"]["search_space"] = {"batch_size": {"type": "randint", "low": 8, "high": 32}}
    with pytest.raises(SpecError, match="must be a multiple of 2; got 'a randint range'"):
        load_spec(spec)


def test_plan_of_a_multi_worker_trial() -> None:
    plan = plan_trials("cpu", cpu=1, gpu=0, cluster_gpus=0, workers=2, cluster_cpus=2)
    # the Tune actor only drives the Train run: no CPU, which the two workers need
    assert plan.resources() == {"cpu": 0.0, "gpu": 0.0, "memory": DRIVER_MEMORY}
    assert plan.worker_resources() == {"CPU": 1}
    assert plan.concurrent_trials(cluster_cpus=2, cluster_gpus=0) == 1
    assert plan.concurrent_trials(cluster_cpus=9, cluster_gpus=0) == 4
    gpus = plan_trials("auto", cpu=2, gpu=0, cluster_gpus=8, workers=4, cluster_cpus=64)
    assert gpus.worker_resources() == {"CPU": 2, "GPU": 1.0} and gpus.concurrent_trials(64, 8) == 2
    assert plan_trials("cpu", cpu=1, gpu=0, cluster_gpus=0).concurrent_trials(2, 0) is None  # one worker: Tune packs


def test_a_trial_whose_workers_exceed_the_cluster_is_refused() -> None:
    with pytest.raises(
        SpecError,
        match=r"tuner.workers_per_trial=3 x tuner.resources.cpu=1 needs 3 CPUs per trial "
        r"but the Ray cluster has 2; allowed values here: workers_per_trial <= 2 at "
        r"resources.cpu=1, or resources.cpu <= 0.666667",
    ):
        plan_trials("cpu", cpu=1, gpu=0, cluster_gpus=0, workers=3, cluster_cpus=2)
    with pytest.raises(
        SpecError,
        match=r"tuner.workers_per_trial=4 x tuner.resources.gpu=1 needs 4 GPUs per trial "
        r"but the Ray cluster has 2; allowed values here: workers_per_trial <= 2",
    ):
        plan_trials("cuda", cpu=1, gpu=1, cluster_gpus=2, workers=4, cluster_cpus=64)


def test_concurrency_cap_reaches_the_search_algorithm() -> None:
    """Tune ignores TuneConfig.max_concurrent_trials for its random BasicVariantGenerator: the cap goes into it."""
    from canvascraft.tuning.search import build_tune_config

    random = build_tune_config(load_spec(raw(workers=2)), max_concurrent=1)
    assert random.search_alg.max_concurrent == 1 and random.max_concurrent_trials is None
    own = build_tune_config(load_spec(raw(workers=2, max_concurrent_trials=3)), max_concurrent=1)
    assert own.search_alg.max_concurrent == 3  # the spec's own cap wins
    assert build_tune_config(load_spec(raw(workers=None))).search_alg.max_concurrent == 0  # no cap
    optuna = build_tune_config(load_spec(raw(workers=2, search="optuna")), max_concurrent=2)
    assert optuna.max_concurrent_trials == 2  # a Searcher: Tune wraps it in a ConcurrencyLimiter
