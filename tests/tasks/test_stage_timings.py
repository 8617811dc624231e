"""Stage timings read from Prefect's task runs: the name -> stage rule, and a real flow run under the test harness
whose completion hook (observe_run) pushes them to a real Pushgateway."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tasks.stage_timings import TRAIN_STAGE_TASKS, read_stage_timings, stage_durations, stage_of
from tests.observability_helpers import run_gateway, scrape, value

T0 = datetime(2026, 12, 2, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_task_run_names_map_to_their_stage() -> None:
    assert stage_of("ingest-4f2") == "ingest" and stage_of("report-ingest-a1b") == "ingest"
    assert stage_of("preprocess-shard-12") == "preprocess" and stage_of("preprocess-0") == "preprocess"  # Ray subflow
    assert stage_of("palette-chunk-3") == "features" and stage_of("materialize-features-9c0") == "features"
    assert stage_of("fid-reference-chunk-1") == "evaluate" and stage_of("fid-reference-0") == "evaluate"
    assert stage_of("training-set-77e") == "training_set" and stage_of("start-tracking-1aa") == "tune"
    assert stage_of("resolve-spec-0b1") is None and stage_of("report-run-5d2") is None  # no stage's work
    assert list(TRAIN_STAGE_TASKS) == [
        "ingest",
        "preprocess",
        "features",
        "training_set",
        "tune",
        "evaluate",
        "publish",
    ]


def test_a_stage_spans_its_first_start_to_its_last_end() -> None:
    spans = [
        ("publish-1", at(50), at(52)),
        ("ingest-1", at(0), at(2)),
        ("preprocess-shard-0", at(2), at(5)),
        ("preprocess-shard-1", at(2.5), at(7)),  # parallel pieces: the span, not the sum
        ("preprocess-assemble-1", at(7), at(7.5)),
        ("resolve-spec-1", at(-1), at(0)),
    ]
    assert stage_durations(spans) == {"ingest": 2.0, "preprocess": 5.5, "publish": 2.0}  # in stage order


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Debian Pushgateway on a free loopback port for this module (skips when it is not installed)."""
    yield from run_gateway(tmp_path_factory)


def test_real_flow_run_timings_reach_the_pushgateway(
    prefect_harness, gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tasks named like the train flow's, mapped on threads and in a subflow: the hook pushes each stage's span."""
    from prefect import flow, task

    from tasks.observability import observe_run

    monkeypatch.setenv("CANVASCRAFT_PUSHGATEWAY_URL", gateway)

    @task(name="ingest")
    def ingest(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @task(name="preprocess-shard", task_run_name="preprocess-shard-{index}")
    def shard(index: int) -> int:
        time.sleep(0.3)
        return index

    @task(name="resolve-spec")
    def resolve() -> None:
        time.sleep(0.5)  # belongs to no stage: counted nowhere

    @flow(name="palettes")
    def palettes() -> float:
        return ingest.with_options(name="palette-chunk")(0.2)

    @flow(name="train", on_completion=[observe_run])
    def fake_train(spec: dict) -> int:
        resolve()
        ingest(0.4)
        total = sum(shard.map(range(3)).result())
        palettes()
        return total

    state = fake_train({"name": "timings"}, return_state=True)
    assert state.is_completed()
    stages = read_stage_timings(state.state_details.flow_run_id)
    assert list(stages) == ["ingest", "preprocess", "features"]
    assert stages["ingest"] >= 0.4 and stages["preprocess"] >= 0.3 and stages["features"] >= 0.2
    samples = scrape(gateway)
    group = {"job": "canvascraft_train", "pipeline": "timings"}
    for stage, seconds in stages.items():  # the hook read the same task runs
        assert value(samples, "canvascraft_stage_duration_seconds", stage=stage, **group) == pytest.approx(
            seconds, abs=0.05
        )
    pushed = {lab["stage"] for lab, _ in samples["canvascraft_stage_duration_seconds"] if lab["pipeline"] == "timings"}
    assert pushed == set(stages)  # no stage the run did not have
