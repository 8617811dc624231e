"""The palettes and FID-reference stages as mapped Prefect tasks under the test harness (thread pool of 2), on the
loopback S3 and a local Feast store: one task run per chunk, a new image recomputes one chunk, an unchanged
snapshot hits Prefect's cache, and the train flow runs the palettes stage's chunks as its own task runs."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from canvascraft import pieces
from canvascraft.artifact_root import artifact_root
from canvascraft.datasets import seed_dataset
from canvascraft.evaluation.scores import ReferenceStatsCache, reference_statistics
from canvascraft.evaluation.stage import reference_extractor, reference_version, seeded_sample, training_set
from canvascraft.settings import get_settings
from canvascraft.spec import load_spec
from canvascraft.stack.s3_server import ARTIFACT_BUCKET
from flows.stages import fid_reference_stage, palettes_stage, preprocess_stage
from tasks.ingest import ingest_snapshot
from tasks.task_runners import run_stage
from tests.canvascraft.test_preprocess import add_one_image

PALETTES = {"palettes": [{"name": "image_stats"}, {"name": "rgb_histogram", "params": {"bins": 4}}], "image_size": 16}


@pytest.fixture
def stage_env(monkeypatch: pytest.MonkeyPatch, s3_settings, tmp_path: Path) -> None:
    """Chunks of ~6 images, two stage threads, this test's own artifact root and Feast data folder."""
    monkeypatch.setattr(pieces, "DIVISOR", 4)
    monkeypatch.setattr(pieces, "MIN_SIZE", 2)
    monkeypatch.setattr(pieces, "MAX_SIZE", 64)
    monkeypatch.setenv("CANVASCRAFT_STAGE_WORKERS", "2")
    monkeypatch.setenv("CANVASCRAFT_ARTIFACT_ROOT", f"s3://{ARTIFACT_BUCKET}/t-{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("CANVASCRAFT_FEAST_DATA", str(tmp_path / "feast"))


def spec_for(s3_client, bucket: str, **sections: Any) -> dict[str, Any]:
    """30 digits under ``s3://<bucket>/d`` and a spec reading them (brushed to 8 x 8 gray) with ``sections``."""
    seed_dataset("digits", s3_client, f"s3://{bucket}/d", limit=30)
    return {
        "name": f"stages-{bucket}",
        "seed": 1,
        "data": {"source": f"s3://{bucket}/d", "min_valid_count": 10},
        "brushes": [{"name": "resize", "params": {"size": 8}}, {"name": "grayscale"}, {"name": "normalize"}],
        **sections,
    }


def task_runs(flow_run_id: Any, prefix: str, count: int = 0) -> list[Any]:
    """The task runs of one flow run whose name starts with ``prefix``, once ``count`` of them are in a final state.

    The server records task-run states from events, a moment after the engine reports them: a read right after the
    flow returns may still see a run as Running (more so on a loaded machine), so the read is repeated (up to 60 s).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + 60
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        runs = [r for r in runs if r.name.startswith(prefix)]
        if (len(runs) >= count and all(r.state and r.state.is_final() for r in runs)) or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


def test_palettes_stage_maps_chunks_and_recomputes_one_for_a_new_image(
    prefect_harness, s3_client, bucket: str, stage_env: None, tmp_path: Path
) -> None:
    spec = load_spec(spec_for(s3_client, bucket, features=PALETTES))
    report = ingest_snapshot.fn(spec)
    state = run_stage(palettes_stage, report, spec, return_state=True)
    first = state.result()
    runs = task_runs(state.state_details.flow_run_id, "palette-chunk", first.chunks)
    assert first.chunks >= 3 and len(runs) == first.chunks  # one task run per chunk
    assert first.chunks_computed == first.chunks and first.images_new == 30
    assert first.rows_written == 60 and first.rows_materialized == 60

    add_one_image(s3_client, bucket, "d", tmp_path)  # a digit that is not a chunk boundary at DIVISOR 4
    report = ingest_snapshot.fn(spec)
    state = run_stage(palettes_stage, report, spec, return_state=True)
    second = state.result()
    assert (second.chunks_computed, second.images_new, second.rows_written) == (1, 1, 2)

    # nothing new: each chunk's key (content + palette set + ids to compute) names an earlier result, except the
    # chunk the last run computed (its ids-to-compute went from [new image] to []): it runs, computing nothing
    state = run_stage(palettes_stage, report, spec, return_state=True)
    third = state.result()
    runs = task_runs(state.state_details.flow_run_id, "palette-chunk", third.chunks)
    assert third.rows_written == 0 and third.chunks_computed == 0 and len(runs) == third.chunks
    assert sorted(r.state.name for r in runs) == ["Cached"] * (len(runs) - 1) + ["Completed"]


def test_fid_reference_stage_fills_the_cache_the_evaluation_reads(
    prefect_harness, s3_client, bucket: str, stage_env: None
) -> None:
    spec = load_spec(spec_for(s3_client, bucket, evaluator={"dims": 64, "num_samples": 100}))  # N >= 30: all
    report = ingest_snapshot.fn(spec)
    shards = run_stage(preprocess_stage, report, spec)
    state = run_stage(fid_reference_stage, spec, shards, None, return_state=True)
    first = state.result()
    runs = task_runs(state.state_details.flow_run_id, "fid-reference-chunk", first.chunks)
    assert first.chunks >= 3 and len(runs) == first.chunks == first.chunks_computed

    # what evaluate does: the one-shot path on the same sample builds the same key and hits the stage's statistics
    settings = get_settings()
    artifacts = artifact_root(settings)
    images, _ = training_set(shards, None, artifacts)
    real = seeded_sample(images, spec.evaluator.num_samples, spec.seed)
    extractor = reference_extractor(spec, settings)
    cache = ReferenceStatsCache.for_artifacts(artifacts)
    hit = reference_statistics(real, extractor, cache=cache, dataset_version=reference_version(shards))
    one_shot = reference_statistics(real, extractor)
    assert cache.hits == 1 and hit.n == 30
    assert np.abs(hit.mu - one_shot.mu).max() <= 1e-6 and np.abs(hit.sigma - one_shot.sigma).max() <= 1e-6

    # the same reference again: found in the cache, no chunk runs (a grown set recomputing one chunk is shown on
    # the core functions in tests/canvascraft/evaluation/test_reference_chunks.py, without Prefect's cost)
    again = run_stage(fid_reference_stage, spec, shards, None, return_state=True)
    assert again.result().found and task_runs(again.state_details.flow_run_id, "fid-reference-chunk") == []


def test_train_flow_runs_palettes_as_a_stage_of_mapped_chunks(
    prefect_harness, s3_client, bucket: str, stage_env: None
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    from flows.train import train

    state = train(spec_for(s3_client, bucket, features=PALETTES), return_state=True)
    assert state.is_completed(), state.message
    features = state.result().features
    with get_client(sync_client=True) as client:
        stages = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    assert stages == []  # without a Ray address the stages run inside the train flow run (tasks/task_runners.py)
    runs = task_runs(state.state_details.flow_run_id, "palette-chunk", features.chunks)
    assert features.chunks >= 3 and len(runs) == features.chunks and features.rows_written == 60
