"""Features stage task bodies on real local Feast (sqlite online, duckdb offline) and the loopback S3."""

from __future__ import annotations

import pandas as pd
import pytest

from canvascraft.datasets import seed_dataset
from canvascraft.errors import ParameterError, SpecError
from canvascraft.spec import load_spec
from tasks.features import materialize_features, training_set
from tasks.ingest import ingest_snapshot


def spec_for(bucket: str, **features: object) -> dict:
    return {
        "name": f"feat-{bucket}",
        "data": {"source": f"s3://{bucket}/digits", "min_valid_count": 5},
        "features": {
            "palettes": [{"name": "image_stats"}, {"name": "rgb_histogram", "params": {"bins": 4}}],
            "image_size": 16,
            **features,
        },
    }


@pytest.fixture(autouse=True)
def fresh_feast_store(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own Feast data folder (digits share content hashes across tests)."""
    monkeypatch.setenv("CANVASCRAFT_FEAST_DATA", str(tmp_path / "feast"))


def test_materialize_is_incremental_and_training_set_filters(s3_client, bucket: str) -> None:
    seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=30)
    spec = load_spec(spec_for(bucket, filters=[{"feature": "sharpness", "op": ">=", "value": 0.035}]))
    report = ingest_snapshot.fn(spec)
    first = materialize_features.fn(report, spec)
    assert first.images_new == 30 and first.rows_written == 60 and first.rows_materialized >= 60
    again = materialize_features.fn(report, spec)
    assert again.rows_computed == 0 and again.rows_written == 0  # nothing new on a rerun

    selection = training_set.fn(report, spec)
    table = pd.read_parquet(selection.reference_table)
    assert len(table) == 30 and table["brightness"].notna().all()
    expected_kept = int((table["sharpness"] >= 0.035).sum())
    assert selection.kept == expected_kept and selection.dropped == 30 - expected_kept
    assert 0 < expected_kept < 30  # the threshold really splits digits


def test_unknown_filter_feature_names_allowed_columns(s3_client, bucket: str) -> None:
    seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=6)
    spec = load_spec(spec_for(bucket, filters=[{"feature": "sharpnes", "op": ">", "value": 0}]))
    report = ingest_snapshot.fn(spec)
    materialize_features.fn(report, spec)
    with pytest.raises(ParameterError, match=r"features.filters\[0\].feature.*sharpness"):
        training_set.fn(report, spec)


def test_unknown_palette_and_bad_param_in_spec() -> None:
    with pytest.raises(SpecError, match=r"features.palettes\[0\].name.*image_stats"):
        load_spec(spec_for("bkt", palettes=[{"name": "oil"}]))
    with pytest.raises(SpecError, match=r"features.palettes\[0\].params.bins"):
        load_spec(spec_for("bkt", palettes=[{"name": "rgb_histogram", "params": {"bins": 1}}]))
