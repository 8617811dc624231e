"""The preprocess stage as mapped Prefect tasks under the test harness: one task run per piece, on a thread pool
or on Ray, and a new image recomputes only the piece that holds it."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import torch
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from canvascraft import pieces
from canvascraft.artifact_root import artifact_root
from canvascraft.brushes import BrushStack
from canvascraft.datasets import seed_dataset
from canvascraft.ingest.snapshots import load_manifest
from canvascraft.preprocess import ShardSet, load_shards
from canvascraft.settings import get_settings
from canvascraft.spec import PipelineSpec, load_spec
from canvascraft.stack.s3_server import ARTIFACT_BUCKET
from flows.stages import preprocess_stage
from tasks.ingest import ingest_snapshot
from tasks.task_runners import SettingsThreadPoolTaskRunner, run_stage, stage_task_runner
from tests.canvascraft.test_preprocess import add_one_image, single_loop

BRUSHES = [{"name": "resize", "params": {"size": 8}}, {"name": "grayscale"}, {"name": "normalize"}]


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of ~6 images (planning runs in the flow's process), so 30 digits make several."""
    monkeypatch.setattr(pieces, "DIVISOR", 4)
    monkeypatch.setattr(pieces, "MIN_SIZE", 2)
    monkeypatch.setattr(pieces, "MAX_SIZE", 64)


@pytest.fixture
def fresh_root(monkeypatch: pytest.MonkeyPatch, s3_settings) -> str:
    """An artifact root of this test's own on the loopback S3: no piece of another test can be found in it."""
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("CANVASCRAFT_ARTIFACT_ROOT", f"s3://{ARTIFACT_BUCKET}/{prefix}")
    return prefix


def piece_objects(s3_client, prefix: str) -> set[str]:
    listed = s3_client.list_objects_v2(Bucket=ARTIFACT_BUCKET, Prefix=f"{prefix}/shards/pieces/")
    return {o["Key"] for o in listed.get("Contents", [])}


def shard_runs(state: Any, count: int = 0) -> list[Any]:
    """The ``preprocess-shard`` task runs of one stage run, once ``count`` of them are in a final state.

    The server records task-run states from events a moment after the engine sends them, so the read is repeated
    (up to 60 s) until they are final (as tests/tasks/test_feature_stages.py does).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + 60
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
            )
        runs = [r for r in runs if r.name.startswith("preprocess-shard")]
        if (len(runs) >= count and all(r.state and r.state.is_final() for r in runs)) or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


def snapshot_spec(s3_client, bucket: str) -> PipelineSpec:
    seed_dataset("digits", s3_client, f"s3://{bucket}/d", limit=30)
    return load_spec(
        {"name": "stage", "seed": 1, "brushes": BRUSHES, "data": {"source": f"s3://{bucket}/d", "min_valid_count": 10}}
    )


def old_loop(spec: PipelineSpec, dataset_version: str) -> torch.Tensor:
    settings = get_settings()
    manifest = load_manifest(dataset_version, artifact_root(settings))
    return single_loop(manifest, settings.home / "cache", BrushStack.from_spec(spec.brushes), spec.seed)


def test_mapped_stage_recomputes_only_the_changed_piece(
    prefect_harness,
    s3_client,
    bucket: str,
    small_pieces: None,
    fresh_root: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CANVASCRAFT_STAGE_WORKERS", "2")
    spec = snapshot_spec(s3_client, bucket)
    report = ingest_snapshot.fn(spec)
    first_state = run_stage(preprocess_stage, report, spec, return_state=True)
    first: ShardSet = first_state.result()
    runs = shard_runs(first_state, len(first.pieces))
    assert len(first.pieces) >= 3 and len(runs) == len(first.pieces)  # one task run per piece
    assert {r.state.name for r in runs} == {"Completed"} and first.pieces_computed == len(first.pieces)
    before = piece_objects(s3_client, fresh_root)
    assert len(before) == 2 * len(first.pieces)  # a tensor file and its marker each

    add_one_image(s3_client, bucket, "d", tmp_path)
    report = ingest_snapshot.fn(spec)
    assert report.valid == 31
    second_state = run_stage(preprocess_stage, report, spec, return_state=True)
    second: ShardSet = second_state.result()
    written = piece_objects(s3_client, fresh_root) - before
    assert len(written) == 2 and second.pieces_computed == 1  # exactly one piece computed and written
    runs = shard_runs(second_state, len(second.pieces))
    assert len(runs) == len(second.pieces) and {r.state.name for r in runs} <= {"Completed", "Cached"}
    assert torch.equal(load_shards(second, artifact_root(get_settings())), old_loop(spec, report.dataset_version))

    third = run_stage(preprocess_stage, report, spec, return_state=True)  # the same snapshot again: no piece runs
    assert third.result().reuse in ("reused", "cached") and shard_runs(third) == []


MEETING = threading.Barrier(2, timeout=60)


@task(cache_policy=NO_CACHE)
def meet(number: int) -> str:
    """Passes only when another mapped run is in flight at the same time."""
    MEETING.wait()
    return threading.current_thread().name


@task(cache_policy=NO_CACHE)
def where(number: int) -> tuple[int, str]:
    """The process a mapped run ran in and the artifact root its settings name."""
    return os.getpid(), get_settings().resolved_artifact_root


@flow
def meeting(count: int) -> list[str]:
    """Map ``meet`` over ``count`` items on the flow's task runner."""
    return meet.map(range(count)).result()


@flow
def processes(count: int) -> list[tuple[int, str]]:
    """Map ``where`` over ``count`` items (a flow Ray can pickle: it does not reach the barrier's lock)."""
    return where.map(range(count)).result()


def test_stage_runner_is_a_thread_pool_sized_by_the_settings(prefect_harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CANVASCRAFT_RAY_ADDRESS", raising=False)
    monkeypatch.setenv("CANVASCRAFT_STAGE_WORKERS", "3")
    runner = stage_task_runner()
    assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == 3
    monkeypatch.delenv("CANVASCRAFT_STAGE_WORKERS")
    assert stage_task_runner()._max_workers == os.cpu_count()
    monkeypatch.setenv("CANVASCRAFT_STAGE_WORKERS", "2")
    names = run_stage(meeting, 2)  # both runs wait for each other: they must run at the same time
    assert len(set(names)) == 2


@flow(task_runner=SettingsThreadPoolTaskRunner())
def host(count: int) -> list[str]:
    """A flow shaped like train: its runner is sized by the settings when it runs; it runs a stage."""
    return run_stage(meeting, count)


def test_a_stage_runs_inside_a_settings_sized_flow(prefect_harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    monkeypatch.delenv("CANVASCRAFT_RAY_ADDRESS", raising=False)
    monkeypatch.setenv("CANVASCRAFT_STAGE_WORKERS", "2")  # read when the run starts, not at decoration
    state = host(2, return_state=True)
    assert len(set(state.result())) == 2  # both pieces met: the run's pool has 2 threads
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
        subflows = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id]))
        )
    assert len([r for r in runs if r.name.startswith("meet")]) == 2 and subflows == []  # task runs of this run


@pytest.mark.e2e
def test_stage_runs_its_pieces_on_ray(
    prefect_harness, s3_client, bucket: str, small_pieces: None, fresh_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    spec = snapshot_spec(s3_client, bucket)
    report = ingest_snapshot.fn(spec)
    # a local Ray started here (workers inherit this environment: the test's artifact root and S3); a Ray an
    # earlier test of this process left running has another test's environment, so it goes first
    if ray.is_initialized():
        ray.shutdown()
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 1024**2)
    try:
        monkeypatch.setenv("CANVASCRAFT_RAY_ADDRESS", context.address_info["address"])
        runner = stage_task_runner()
        assert type(runner).__name__ == "StageRayTaskRunner"
        probes = run_stage(processes, 2)
        assert os.getpid() not in {pid for pid, _ in probes}  # the mapped runs ran in Ray worker processes
        assert {root for _, root in probes} == {get_settings().resolved_artifact_root}
        state = run_stage(preprocess_stage, report, spec, return_state=True)
        shards: ShardSet = state.result()
        runs = shard_runs(state, len(shards.pieces))
        assert len(runs) == len(shards.pieces) >= 3, [(r.name, r.state.name) for r in runs]
        assert shards.pieces_computed == len(shards.pieces), [(r.name, r.state.name) for r in runs]
        assert torch.equal(load_shards(shards, artifact_root(get_settings())), old_loop(spec, report.dataset_version))
    finally:
        ray.shutdown()
