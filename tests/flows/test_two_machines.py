""" "Two machines" on loopback: one set of services (S3, MLflow, Prefect server, Redis) and homes that share
nothing else. Each "machine" gets only the environment `canvascraft stack env --worker --with-secrets` prints,
its own CANVASCRAFT_HOME and PREFECT_HOME. A train run from home A; a drift check from home B finds the champion's
reference; home A deleted, a rerun from home C reuses the shards (no recompute) and restores the finished search
from the artifact root; two processes holding the promotion lease never overlap. Real services, a real (tiny)
DCGAN; nothing mocked. Runs in the `prefect_server` pytest process (a few minutes on 2 cores)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from canvascraft.settings import get_settings
from canvascraft.stack.process import free_port
from canvascraft.stack.services import redis_service
from canvascraft.stack.worker_env import worker_environment
from tests.drift_helpers import seed_digits
from tests.prefect_server_helpers import PROJECT, PrefectStack
from tests.spec_helpers import tiny_dcgan_spec

pytestmark = [pytest.mark.e2e, pytest.mark.prefect_server]


@pytest.fixture(scope="module")
def services(prefect_stack: PrefectStack, s3_client) -> dict[str, str]:
    """The shared services, plus a Redis, and the worker environment `stack env --worker --with-secrets` prints."""
    os.environ["CANVASCRAFT_REDIS_PORT"] = str(free_port())
    redis = redis_service(get_settings())
    redis.start()
    try:
        env = subprocess.run(
            [sys.executable, "-m", "cli.main", "stack", "env", "--worker", "--with-secrets"],
            cwd=PROJECT,
            env={**os.environ, "PREFECT_API_URL": prefect_stack.api_url},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        exported = dict(
            line.removeprefix("export ").split("=", 1) for line in env.splitlines() if line.startswith("export ")
        )
        yield {k: v.strip("'") for k, v in exported.items()}
    finally:
        redis.stop()
        os.environ.pop("CANVASCRAFT_REDIS_PORT", None)


def machine(root: Path, name: str, services: dict[str, str]) -> dict[str, str]:
    """The environment of one "machine": the service addresses and keys only, its own homes."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CANVASCRAFT_", "PREFECT_", "AWS_"))}
    home = root / name
    return {
        **base,
        **services,
        "CANVASCRAFT_HOME": str(home / "canvascraft"),
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "CANVASCRAFT_PUSHGATEWAY_URL": "127.0.0.1:9",
    }


def run(args: list[str], env: dict[str, str], timeout: int = 900) -> str:
    """Run a command from the project on one machine; its output (the test fails with it on a non-zero exit)."""
    done = subprocess.run(args, check=False, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return output


def test_worker_env_names_services_not_the_home(services: dict[str, str]) -> None:
    assert services["CANVASCRAFT_USE_EMBEDDED"] == "false"
    assert services["CANVASCRAFT_ARTIFACT_ROOT"].startswith("s3://")
    assert services["CANVASCRAFT_REDIS_URL"].startswith("redis://127.0.0.1:")
    assert services["CANVASCRAFT_MLFLOW_TRACKING_URI"].startswith("http://127.0.0.1:")
    assert "CANVASCRAFT_HOME" not in services and services["AWS_SECRET_ACCESS_KEY"]
    without = worker_environment(get_settings(), with_secrets=False)
    assert "AWS_SECRET_ACCESS_KEY" not in without and "AWS_ACCESS_KEY_ID" not in without


def test_train_on_a_drift_on_b_rerun_on_c(services: dict[str, str], s3_client, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    bucket = f"two-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=bucket)
    seed_digits(s3_client, f"s3://{bucket}/digits", 0, 120)
    model = f"two-machines-{uuid.uuid4().hex[:6]}"
    spec = tiny_dcgan_spec(f"two-{uuid.uuid4().hex[:6]}", f"s3://{bucket}/digits", model)
    spec["drift"] = {"incoming": f"s3://{bucket}/digits"}
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))

    a, b, c = (machine(tmp_path, name, services) for name in "abc")
    first = run([sys.executable, "-m", "flows.train", str(spec_file)], a)
    assert "preprocessed to [1, 8, 8] (computed)" in first, first[-3000:]

    # machine B has never seen this pipeline: the champion's reference comes from the artifact root
    checked = run([sys.executable, "-m", "flows.drift_check", str(spec_file)], b)
    assert "no new images" in checked, checked[-3000:]
    assert "does not exist" not in checked

    shutil.rmtree(tmp_path / "a")  # the first machine is gone
    started = time.perf_counter()
    again = run([sys.executable, "-m", "flows.train", str(spec_file)], c)
    rerun_seconds = time.perf_counter() - started
    client = MlflowClient(services["CANVASCRAFT_MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(spec["name"])
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    parents = [
        r
        for r in runs
        if "mlflow.parentRunId" not in r.data.tags
        and r.data.tags.get("canvascraft.kind") != "drift"
        and "tune_restored" in r.data.tags
    ]
    assert len(parents) == 2, [r.data.tags for r in parents]
    # the search was found in the artifact root and restored (not rerun) by a driver on another machine
    assert parents[1].data.tags.get("tune_restored") == "True", parents[1].data.tags
    assert parents[0].data.tags.get("tune_restored") == "False"
    # home C had no shards: found in the artifact root, never recomputed (A's run had no cache key yet: the key
    # exists only once the root holds the shards, so C's is the first cached result, asserted below)
    assert "preprocessed to [1, 8, 8] (reused)" in again, again[-3000:]
    # C's preprocess result (keyed by content) went to the results block on S3: the next worker gets a cache hit
    keys = [
        o["Key"]
        for o in s3_client.list_objects_v2(Bucket="canvascraft-artifacts", Prefix="prefect-results/preprocess-").get(
            "Contents", []
        )
    ]
    assert keys, "no cached preprocess result under s3://canvascraft-artifacts/prefect-results/"
    print(json.dumps({"rerun_from_empty_home_seconds": round(rerun_seconds, 1), "cached_results": keys}))


def test_promotion_lease_spans_processes(prefect_stack: PrefectStack, tmp_path: Path) -> None:
    """Two OS processes take the same model's promotion lease: their critical sections never overlap."""
    script = tmp_path / "hold.py"
    script.write_text(
        "import sys, time\n"
        "from tasks.promotion_lock import promotion_lock\n"
        "lock = promotion_lock(sys.argv[1])\n"
        "with lock():\n"
        "    print('in', time.time(), flush=True)\n"
        "    time.sleep(4)\n"
        "    print('out', time.time(), flush=True)\n"
    )
    env = {**os.environ, "PREFECT_API_URL": prefect_stack.api_url, "PYTHONPATH": str(PROJECT)}
    name = f"lease-{uuid.uuid4().hex[:6]}"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), name],
            cwd=PROJECT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    spans = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
        stamps = dict(line.split() for line in out.splitlines() if line.startswith(("in ", "out ")))
        spans.append((float(stamps["in"]), float(stamps["out"])))
    first, second = sorted(spans)
    assert first[1] <= second[0], f"both held the lease at once: {spans}"


# `TWO_MACHINES_GATE_LOCK=none pytest -m prefect_server -k concurrent_publishes` shows the race the lease prevents
GATE_LOCK = os.environ.get("TWO_MACHINES_GATE_LOCK", "lease")


def test_concurrent_publishes_from_two_machines(services: dict[str, str], tmp_path: Path) -> None:
    """A publishes the best version, B a good one 0.4 s later, both through the real gate against one MLflow
    server (behind a proxy adding 0.25 s per request, so each gate's read-decide-write spans seconds and the two
    overlap). Under the lease the gates run one after the other (whichever got it first): every promotion replaces
    the champion of its moment, so the promotions form one chain from the base and @previous is the link before
    the champion. Without a lock both read the base as champion and both "replace" it (the chain breaks)."""
    import contextlib

    import mlflow
    import torch
    from mlflow import MlflowClient

    from canvascraft.evaluation.scores import FidScore
    from canvascraft.publishing import model_registry as registry
    from canvascraft.trainers import build_trainer
    from tests.latency_proxy import latency_proxy

    tracking = services["CANVASCRAFT_MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(tracking)
    name = f"race-{uuid.uuid4().hex[:6]}"
    trainer = build_trainer(
        "dcgan",
        {
            "sample_size": 8,
            "channels": 1,
            "latent_dim": 4,
            "g_features": 4,
            "d_features": 4,
            "steps": 1,
            "batch_size": 4,
        },
    )
    trainer.train(None, torch.rand(8, 1, 8, 8) * 2 - 1)
    checkpoint = str(trainer.save_checkpoint(tmp_path / "ckpt"))

    def score(fid: float) -> FidScore:
        return FidScore(
            fid=fid,
            kid_mean=None,
            kid_std=None,
            n=32,
            n_real=32,
            dims=64,
            weights_sha256="a" * 64,
            resize="bilinear",
            reference="two-machines",
        )

    mlflow.set_experiment(name)
    with mlflow.start_run() as run:
        pass
    versions = {
        label: registry.log_model_version(name, checkpoint, run.info.run_id, registry.save_score_tags(score(fid)))
        for label, fid in (("base", 20.0), ("best", 4.0), ("good", 8.0))
    }
    registry.gate_and_alias(
        name,
        versions["base"],
        score(20.0),
        metric="fid",
        margin=0.5,
        tag="candidate",
        lock=lambda: contextlib.nullcontext(),
    )
    script = str(PROJECT / "tests" / "flows" / "gate_publisher.py")
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    with latency_proxy(tracking, delay=0.25) as proxy:
        launches = [("a", "best", 4.0, 0.0), ("b", "good", 8.0, 0.4)]
        procs = []
        for home, label, fid, delay in launches:
            env = {
                **machine(tmp_path, home, services),
                "CANVASCRAFT_MLFLOW_TRACKING_URI": proxy,
                "PYTHONPATH": str(PROJECT),
            }
            procs.append(
                subprocess.Popen(
                    [sys.executable, script, name, versions[label], str(fid), str(barrier), str(delay), GATE_LOCK],
                    cwd=PROJECT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        outcomes = {}
        for (_, label, _, _), proc in zip(launches, procs, strict=True):
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err[-3000:]
            outcomes[label] = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(outcomes))
    client = MlflowClient(tracking)
    assert outcomes["good"]["entered"] < outcomes["best"]["left"]  # the two gates did overlap in time
    promoted = [o for o in sorted(outcomes.values(), key=lambda o: o["left"]) if o["promoted"]]
    chain = [versions["base"], *(o["version"] for o in promoted)]
    # each promotion replaced the champion of its moment (A's first, or B's first then A's: the lease decides)
    assert [o["previous_champion"] for o in promoted] == chain[:-1], outcomes
    assert chain[-1] == versions["best"] == client.get_model_version_by_alias(name, "champion").version
    assert client.get_model_version_by_alias(name, "previous").version == chain[-2]


def ran_here(worker_log: str, run_id: str) -> bool:
    """True when this worker submitted the run (it logged the id and did not lose the race to another worker)."""
    return (
        f"submitting flow run '{run_id}'" in worker_log
        and f"Aborted submission of flow run '{run_id}'" not in worker_log
    )


def test_workers_on_two_homes_run_deployment_runs_whichever_picks_them(
    prefect_stack: PrefectStack, services: dict[str, str], s3_client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session's worker steps aside; one worker per home polls gpu-pool. Two runs of the train deployment on
    the same spec and data: both complete, and the second restores the first's search, whichever worker ran each."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from canvascraft.stack.services import worker_service

    bucket = f"pool-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=bucket)
    seed_digits(s3_client, f"s3://{bucket}/digits", 0, 100)
    spec = tiny_dcgan_spec(f"pool-{uuid.uuid4().hex[:6]}", f"s3://{bucket}/digits", f"pool-{uuid.uuid4().hex[:6]}")
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))

    port = int(prefect_stack.api_url.rsplit(":", 1)[1].split("/")[0])
    session_worker = worker_service(get_settings(prefect_port=port), PROJECT)
    session_worker.env.update({"PREFECT_LOGGING_LEVEL": "INFO", "PREFECT_WORKER_QUERY_SECONDS": "2"})
    session_worker.stop()
    monkeypatch.delenv("CANVASCRAFT_FEAST_DATA", raising=False)  # the homes' workers get service addresses only
    workers = []
    try:
        for name in ("d", "e"):
            env = machine(tmp_path, name, services)
            worker = worker_service(get_settings(home=Path(env["CANVASCRAFT_HOME"]), prefect_port=port), PROJECT)
            worker.env.update({k: v for k, v in env.items() if k.startswith(("CANVASCRAFT_", "PREFECT_", "AWS_"))})
            worker.env.update({"PREFECT_WORKER_QUERY_SECONDS": "2"})
            worker.start()
            workers.append(worker)
        states = []
        with temporary_settings({PREFECT_API_URL: prefect_stack.api_url}), get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("train/digits-quick")
            for _ in range(2):
                run = client.create_flow_run_from_deployment(deployment.id, parameters={"spec": str(spec_file)})
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    state = client.read_flow_run(run.id).state
                    if state is not None and state.is_final():
                        break
                    time.sleep(3)
                states.append((str(run.id), state.type.value if state else None))
        assert [s for _, s in states] == ["COMPLETED", "COMPLETED"], states
        # Both workers may see a scheduled run; the one that loses the race to PENDING logs "Aborted submission".
        picked = {run_id: [str(w.home) for w in workers if ran_here(w.tail_log(5000), run_id)] for run_id, _ in states}
        logs = {str(w.home): w.tail_log(5000) for w in workers}
        assert all(len(by) == 1 for by in picked.values()), (picked, logs)  # each run ran on one of the two homes
        print(json.dumps({"picked_by": picked}))
        from mlflow import MlflowClient

        client = MlflowClient(services["CANVASCRAFT_MLFLOW_TRACKING_URI"])
        experiment = client.get_experiment_by_name(spec["name"])
        runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
        restored = [r.data.tags["tune_restored"] for r in runs if "tune_restored" in r.data.tags]
        assert restored == ["False", "True"], restored
    finally:
        for worker in workers:
            worker.stop()
        session_worker.start()
