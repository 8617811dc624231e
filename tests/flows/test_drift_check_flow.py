"""The drift_check flow under the Prefect harness: report, MLflow run, Feast rows, and the event only on drift."""

from __future__ import annotations

import mlflow
import pytest

from canvascraft.settings import get_settings
from canvascraft.spec import load_spec
from tests.drift_helpers import drift_events, drift_spec, make_champion, seed_digits

pytestmark = pytest.mark.e2e


def test_drift_check_emits_only_on_drift(
    prefect_harness, s3_settings, s3_client, bucket: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.drift_check import drift_check

    monkeypatch.setenv("CANVASCRAFT_FEAST_DATA", str(tmp_path / "feast"))
    seed_digits(s3_client, f"s3://{bucket}/reference", 0, 200)
    seed_digits(s3_client, f"s3://{bucket}/same", 200, 300)
    seed_digits(s3_client, f"s3://{bucket}/inverted", 200, 300, invert=True)
    raw = drift_spec(bucket, f"drift-{bucket}", f"m-{bucket}")
    reference_version = make_champion(load_spec(raw), get_settings(), s3_client)
    resource = f"canvascraft.pipeline.drift-{bucket}"

    calm = drift_check(raw, incoming=f"s3://{bucket}/same")
    assert not calm["dataset_drift"] and calm["event_id"] is None and calm["status"] == "no drift"
    assert calm["features"]["rows_written"] == 200  # 100 new images x 2 palette views
    assert drift_events(resource, wait=3) == []

    drifted = drift_check(raw, incoming=f"s3://{bucket}/inverted")
    assert drifted["dataset_drift"] and drifted["event_id"] and "brightness" in drifted["drifted_columns"]
    events = drift_events(resource, wait=15)
    assert len(events) == 1 and str(events[0].id) == drifted["event_id"]
    payload = events[0].payload
    assert payload["drift_share"] == pytest.approx(drifted["drift_share"])
    assert payload["drifted_columns"] == drifted["drifted_columns"] and "spec" not in payload  # data, not commands
    assert payload["extra_sources"] == [f"s3://{bucket}/inverted"] and payload["report"].endswith(".html")
    assert payload["incoming_dataset_version"] == drifted["incoming_dataset_version"] and payload["new_images"] == 100
    assert events[0].resource["canvascraft.dataset_version"] == reference_version

    run = mlflow.get_run(drifted["mlflow_run_id"])
    assert run.data.metrics["dataset_drift"] == 1.0 and run.data.tags["prefect_flow_run_id"]
