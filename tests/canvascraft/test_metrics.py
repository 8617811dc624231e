"""Run metrics pushed to Debian's real prometheus-pushgateway; an unreachable gateway never raises."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from canvascraft.metrics import GROUPING_LABELS, METRICS, MetricsError, RunMetrics, exposed_names, train_result_metrics
from canvascraft.outcomes import FeaturesOutcome, TrainingSelection
from canvascraft.stack.process import free_port
from tests.observability_helpers import run_gateway, scrape, value
from tests.outcome_factories import classifier, published, score, search, train_result


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Debian Pushgateway on a free loopback port for this module."""
    yield from run_gateway(tmp_path_factory)


needs_pushgateway = pytest.mark.skipif(
    shutil.which("prometheus-pushgateway") is None,
    reason="Debian package prometheus-pushgateway not installed (make apt)",
)

TRAIN_RESULT = train_result(
    quarantined=3,
    features=FeaturesOutcome(rows_materialized=1797),
    training_set=TrainingSelection(kept=1790, rows=1797),
    search=search(
        [
            {"trial": "t_0001", "loss": 0.25, "images_per_sec": 410.5, "status": "ok"},
            {"trial": "t_0002", "loss": 0.31, "images_per_sec": 395.0, "status": "error"},
        ],
        {"loss": 0.25, "images_per_sec": 410.5},
    ),
    evaluation=score(41.5, kid_mean=0.012),
    publish=published(score(41.5, kid_mean=0.012), version="7"),
)


def test_catalogue_follows_conventions() -> None:
    for spec in METRICS:
        assert spec.name.startswith("canvascraft_")
        assert not set(spec.labels) & GROUPING_LABELS, spec
        assert spec.name.endswith("_total") == (spec.kind == "counter"), spec
        assert not spec.name.endswith(("_ms", "_milliseconds", "_minutes")), spec  # base units only


def test_unknown_metric_and_bad_outcome_are_domain_errors() -> None:
    metrics = RunMetrics("train", "p")
    with pytest.raises(MetricsError, match="unknown metric"):
        metrics.record("canvascraft_nope", 1)
    with pytest.raises(MetricsError, match="allowed values"):
        metrics.promotion("maybe")
    assert metrics.record("canvascraft_fid", float("nan")) is False  # NaN is not pushed


@needs_pushgateway
def test_train_metrics_arrive_under_the_grouping_key(gateway: str) -> None:
    metrics = train_result_metrics(RunMetrics("train", "digits-quick"), TRAIN_RESULT)
    metrics.stage_durations({"ingest": 1.5, "tune": 42.0})
    metrics.finished(ok=True, duration_seconds=60.0)
    assert metrics.push(gateway) is True

    samples = scrape(gateway)
    group = {"job": "canvascraft_train", "pipeline": "digits-quick"}
    assert value(samples, "canvascraft_images_ingested_total", **group) == 1797
    assert value(samples, "canvascraft_images_quarantined_total", **group) == 3
    assert value(samples, "canvascraft_features_materialized_total", **group) == 1797
    assert value(samples, "canvascraft_stage_duration_seconds", stage="tune", **group) == 42.0
    assert value(samples, "canvascraft_trial_loss", trial="t_0002", **group) == 0.31
    assert value(samples, "canvascraft_trial_images_per_second", trial="t_0001", **group) == 410.5
    assert value(samples, "canvascraft_trials_total", status="error", **group) == 1
    assert value(samples, "canvascraft_fid", **group) == 41.5
    assert value(samples, "canvascraft_kid", **group) == 0.012
    assert value(samples, "canvascraft_fid_samples", **group) == 200
    assert value(samples, "canvascraft_best_trial_loss", **group) == 0.25
    assert value(samples, "canvascraft_training_set_images", **group) == 1790
    assert value(samples, "canvascraft_promotions_total", outcome="promoted", **group) == 1
    assert value(samples, "canvascraft_promotions_total", outcome="kept", **group) == 0
    assert value(samples, "canvascraft_model_version", **group) == 7
    assert value(samples, "canvascraft_flow_failures_total", **group) == 0
    pushed = {name for name in samples if name.startswith("canvascraft_")}
    assert pushed <= exposed_names()  # nothing outside the catalogue (the dashboard test relies on it)


@needs_pushgateway
def test_failure_adds_to_the_group_and_success_replaces_it(gateway: str) -> None:
    group = {"job": "canvascraft_train", "pipeline": "fail-then-pass"}
    good = train_result_metrics(RunMetrics("train", "fail-then-pass"), TRAIN_RESULT)
    good.finished(ok=True)
    assert good.push(gateway)
    failed = RunMetrics("train", "fail-then-pass")
    failed.stage_durations({"ingest": 2.0})
    failed.finished(ok=False, when=time.time())
    assert failed.push(gateway, replace=False)
    samples = scrape(gateway)
    assert value(samples, "canvascraft_flow_failures_total", **group) == 1
    assert value(samples, "canvascraft_fid", **group) == 41.5  # the last good run's score stays visible
    assert value(samples, "canvascraft_last_failure_timestamp_seconds", **group) > 0

    again = RunMetrics("train", "fail-then-pass")
    again.finished(ok=True)
    assert again.push(gateway)
    samples = scrape(gateway)
    assert value(samples, "canvascraft_flow_failures_total", **group) == 0
    assert not [lab for lab, _ in samples.get("canvascraft_fid", []) if lab.get("pipeline") == "fail-then-pass"]


def test_unreachable_gateway_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    metrics = train_result_metrics(RunMetrics("train", "digits-quick"), TRAIN_RESULT)
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="canvascraft.metrics"):
        assert metrics.push(f"127.0.0.1:{free_port()}", timeout=2.0) is False  # nothing listens there
        assert metrics.push("http://10.255.255.1:9091", timeout=0.5) is False  # a black hole: times out
    assert time.monotonic() - started < 10
    assert "not pushed to Pushgateway" in caplog.text and "the run goes on" in caplog.text


def test_grouping_key_and_registry_are_per_run(tmp_path: Path) -> None:
    first, second = RunMetrics("drift_check", "a"), RunMetrics("drift_check", "a")
    first.record("canvascraft_fid", 1.0)
    assert first.job == "canvascraft_drift_check" and first.grouping_key == {"pipeline": "a"}
    assert first.registry is not second.registry and second.names == set()


def test_runs_in_one_process_do_not_add_up_in_multiprocess_mode(
    gateway: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Importing feast sets PROMETHEUS_MULTIPROC_DIR: prometheus-client then shares values between same-named
    metrics of a process. Two runs' counters must still be their own."""
    import importlib
    import os

    import prometheus_client.values

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    importlib.reload(prometheus_client.values)  # what a fresh process that imported feast first would see
    try:
        for _ in range(3):
            run = RunMetrics("train", "multiproc")
            run.ingest(valid=10, quarantined=1)
            run.finished(ok=False)
            assert run.push(gateway)
    finally:
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
        importlib.reload(prometheus_client.values)
    samples = scrape(gateway)
    assert value(samples, "canvascraft_images_ingested_total", pipeline="multiproc") == 10
    assert value(samples, "canvascraft_flow_failures_total", pipeline="multiproc") == 1
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_train_metrics_read_the_typed_result() -> None:
    """Every part of the typed result lands in its metric; a run without a trainer records only its data."""
    with_classifier = score(3.1, classifier=classifier(0.9, 8))
    full = train_result(
        evaluation=with_classifier,
        publish=published(with_classifier, version="3", champion=score(3.0), promoted=False),
    )
    metrics = train_result_metrics(RunMetrics("train", "p"), full)
    assert metrics.value("canvascraft_classifier_score") == 0.9
    assert metrics.value("canvascraft_classifier_coverage") == 8
    assert metrics.value("canvascraft_champion_fid") == 3.0
    assert metrics.value("canvascraft_promotions_total", outcome="kept") == 1
    assert metrics.value("canvascraft_model_version") == 3
    data_only = train_result_metrics(RunMetrics("train", "p"), train_result())
    assert data_only.names == {
        "canvascraft_images_ingested_total",
        "canvascraft_images_quarantined_total",
        "canvascraft_images_preprocessed",
        "canvascraft_features_materialized_total",
        "canvascraft_training_set_images",
    }
