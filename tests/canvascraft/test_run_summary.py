"""The renderings of a train run's typed results: the markdown summary, the evaluation artifact and the log lines."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from canvascraft.ingest import IngestReport
from canvascraft.outcomes import FeaturesOutcome, PublishOutcome, TrainingSelection
from canvascraft.preprocess import ShardSet
from canvascraft.reports import (
    classifier_summary,
    data_lines,
    evaluation_markdown,
    model_lines,
    publish_line,
    run_summary_markdown,
)
from tests.outcome_factories import classifier, published, score, search, train_result

NO_LINKS: dict[str, str | None] = {"mlflow_run": None, "model_version": None, "drift_report": None}
RESULT = train_result(
    mlflow_run_id="abc123", search=search(), evaluation=score(33.3333, kid_mean=0.01), publish=published(score())
)


def test_summary_links_run_version_and_drift_report() -> None:
    links = {
        "mlflow_run": "http://mlflow:5000/#/experiments/1/runs/abc123",
        "model_version": "http://mlflow:5000/#/models/canvascraft-digits/versions/5",
        "drift_report": "http://mlflow:5000/get-artifact?path=drift.html",
    }
    text = run_summary_markdown(RESULT, links, {"ingest": 1.25, "tune": 60.0})
    assert "[abc123](http://mlflow:5000/#/experiments/1/runs/abc123)" in text
    assert "[canvascraft-digits v5](http://mlflow:5000/#/models/canvascraft-digits/versions/5)" in text
    assert "@champion" in text and "FID 33.333" in text and "| tune | 60.0 |" in text
    assert "| `dv42` | 1797 | 2 | 1797 | 3594 | 1790 |" in text
    assert "Tune: 2 trials; best loss 0.21 at 420 images/s" in text
    assert "[latest drift check](http://mlflow:5000/get-artifact?path=drift.html)" in text


def test_summary_without_server_or_trainer_still_renders() -> None:
    text = run_summary_markdown(train_result(), NO_LINKS)
    assert "`dv42`" in text and "no drift check of this pipeline yet" in text
    assert "Registered" not in text and "Tune" not in text and "FID" not in text


def test_unpublished_run_says_why() -> None:
    result = train_result(publish=PublishOutcome(published=False, reason="spec has no publish section"))
    assert "- Not published: spec has no publish section" in run_summary_markdown(result, NO_LINKS)
    assert publish_line(result.publish) == "publish: not published: spec has no publish section"


def test_log_lines_carry_the_flow_output() -> None:
    candidate = score(12.5, kid_mean=0.004, classifier=classifier(0.873, 10))
    result = train_result(mlflow_run_id="run9", search=search(), evaluation=candidate, publish=published(candidate))
    lines = model_lines(result, "loss")
    assert lines[0] == "tune: 2 trials, best loss=0.21 at 420 images/s; checkpoint /tmp/checkpoint"
    assert lines[1].startswith(
        "evaluate: FID 12.500, KID 0.004 (N=200, dims=64, resize=bilinear, weights 000000000000)"
    )
    assert lines[1].endswith("; classifier score 0.873 (10/10 classes)")
    assert lines[2] == "publish: canvascraft-digits v5 aliases ['candidate', 'champion']: fid 12.5"
    assert lines[3] == (
        "samples of this run: /tmp/grid.png (MLflow run run9, artifact samples/grid.png); FID 12.500"
        ", classifier score 0.873 (10/10 classes)"
    )
    assert model_lines(train_result(), "loss") == []


def test_data_lines_count_ingest_preprocess_features_and_training_set() -> None:
    report = IngestReport.model_construct(dataset_version="dv42", valid=10, quarantined=[], downloaded=3)
    shards = ShardSet.model_construct(count=10, shape=[1, 8, 8], reuse="computed", pieces=["a", "b"], pieces_computed=1)
    features = FeaturesOutcome(rows_computed=10, rows_written=10, rows_materialized=10)
    lines = data_lines(report, shards, features, TrainingSelection(kept=9, rows=10))
    assert lines == [
        (
            "dataset version dv42: 10 valid, 0 quarantined, 3 downloaded; 10 images preprocessed to [1, 8, 8] "
            "(computed): 2 pieces, 1 computed"
        ),
        "features: 10 rows computed, 10 written, 10 materialized; training set keeps 9 of 10 images",
    ]


def test_evaluation_markdown_shows_both_sides_of_the_gate() -> None:
    candidate, champion = score(3.1, classifier=classifier()), score(3.0, classifier=classifier())
    verdict = published(candidate, champion=champion, promoted=False).verdict
    text = evaluation_markdown("digits-quick", candidate, "run1", "grid.png", verdict=verdict)
    assert "| candidate | 3.100 |" in text and "| champion v1 (rescored) | 3.000 |" in text
    assert "**Gate (fid):** not promoted - not promoted" in text and "held-out accuracy 0.950" in text
    assert classifier_summary(None) == "-" and classifier_summary(score()) == "-"


def test_outcomes_are_closed_records() -> None:
    with pytest.raises(ValidationError, match="rows_materialised"):  # a misspelt field fails, never reads as 0
        FeaturesOutcome.model_validate({"rows_materialised": 3})
    with pytest.raises(ValidationError, match="frozen"):
        RESULT.features.rows_materialized = 0  # type: ignore[misc]
    assert RESULT.training_set.without_ids().kept_image_ids == []
    assert TrainingSelection(kept_image_ids=["a"], kept=1).without_ids().kept == 1
