"""The core drift check on the loopback S3 and the sqlite MLflow registry: reference lookup, verdicts, errors."""

from __future__ import annotations

import pandas as pd
import pytest

from canvascraft.drift import check_drift, locate_reference, log_drift_run
from canvascraft.errors import DriftError
from canvascraft.settings import get_settings
from canvascraft.spec import load_spec
from tests.drift_helpers import drift_spec, make_champion, seed_digits


@pytest.fixture(autouse=True)
def fresh_feast_store(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own Feast data folder."""
    monkeypatch.setenv("CANVASCRAFT_FEAST_DATA", str(tmp_path / "feast"))


def test_inverted_digits_drift_and_fresh_digits_do_not(s3_settings, s3_client, bucket: str) -> None:
    seed_digits(s3_client, f"s3://{bucket}/reference", 0, 200)
    seed_digits(s3_client, f"s3://{bucket}/same", 200, 320)
    seed_digits(s3_client, f"s3://{bucket}/inverted", 200, 320, invert=True)
    settings = get_settings()
    spec = load_spec(drift_spec(bucket, f"drift-{bucket}", f"m-{bucket}"))
    version = make_champion(spec, settings, s3_client)

    reference = locate_reference(spec, settings)
    assert reference.dataset_version == version and len(pd.read_parquet(reference.table)) == 200

    same = check_drift(spec, settings, f"s3://{bucket}/same").result
    assert not same.dataset_drift and same.drift_share < 0.5 and same.current_rows == 120
    assert same.reference_dataset_version == version and same.incoming == f"s3://{bucket}/same"

    drifted = check_drift(spec, settings, f"s3://{bucket}/inverted").result
    assert drifted.dataset_drift and drifted.drift_share >= 0.5
    assert "brightness" in drifted.drifted_columns and drifted.columns["brightness"].score < 0.01
    assert drifted.report_html and drifted.report_html.endswith(f"{version}-vs-{drifted.incoming_dataset_version}.html")

    logged = log_drift_run(settings, spec, drifted)
    import mlflow

    run = mlflow.get_run(logged.mlflow_run_id)
    assert run.data.metrics["drift_share"] == pytest.approx(drifted.drift_share)
    assert run.data.metrics["drift_score.brightness"] == pytest.approx(drifted.columns["brightness"].score)
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(logged.mlflow_run_id, "drift")]
    assert f"drift/{version}-vs-{drifted.incoming_dataset_version}.html" in artifacts


def test_missing_pieces_are_named(s3_settings, s3_client, bucket: str) -> None:
    settings = get_settings()
    spec = load_spec(drift_spec(bucket, f"drift-{bucket}", f"m-{bucket}"))
    with pytest.raises(DriftError, match=r"drift\.incoming is not set.*--incoming"):
        check_drift(spec, settings)
    with pytest.raises(DriftError, match=f"registered model 'm-{bucket}'.*does not exist"):
        locate_reference(spec, settings)
    no_publish = load_spec({**drift_spec(bucket, "x", "m"), "publish": None})
    with pytest.raises(DriftError, match=r"publish\.registered_model is not set"):
        locate_reference(no_publish, settings)

    from mlflow import MlflowClient

    client = MlflowClient()
    client.create_registered_model(f"m-{bucket}")
    version = client.create_model_version(f"m-{bucket}", source=str(settings.home), tags={})
    with pytest.raises(DriftError, match="has no @champion version \\(aliases: none\\)"):
        locate_reference(spec, settings)
    client.set_registered_model_alias(f"m-{bucket}", "champion", version.version)
    with pytest.raises(DriftError, match="has no 'dataset_version' tag"):
        locate_reference(spec, settings)
    client.set_model_version_tag(f"m-{bucket}", version.version, "dataset_version", "feedbeef")
    with pytest.raises(DriftError, match=r"reference table .*feedbeef.* does not exist"):
        locate_reference(spec, settings)


def test_only_new_images_are_compared_and_answered_versions_stay_calm(s3_settings, s3_client, bucket: str) -> None:
    from canvascraft import tracking

    seed_digits(s3_client, f"s3://{bucket}/reference", 0, 200)
    seed_digits(s3_client, f"s3://{bucket}/mixed", 100, 200)  # 100 images the champion trained on ...
    seed_digits(s3_client, f"s3://{bucket}/mixed/new", 200, 300, invert=True)  # ... and 100 new ones
    settings = get_settings()
    spec = load_spec(drift_spec(bucket, f"drift-{bucket}", f"m-{bucket}"))
    make_champion(spec, settings, s3_client)

    known = check_drift(spec, settings, f"s3://{bucket}/reference").result
    assert known.status == "no new images" and known.new_images == 0 and known.incoming_images == 200
    assert not known.event_due and known.columns == {}

    mixed = check_drift(spec, settings, f"s3://{bucket}/mixed").result
    assert mixed.incoming_images == 200 and mixed.new_images == 100 and mixed.current_rows == 100
    assert mixed.status == "drift" and mixed.event_due

    # a train run that answered this incoming dataset version (any worker reads it from MLflow): no second event
    tracking.ensure_experiment(settings, spec.name)
    import mlflow

    with mlflow.start_run(tags={tracking.RETRAIN_OF_TAG: mixed.incoming_dataset_version}) as run:
        pass
    answered = check_drift(spec, settings, f"s3://{bucket}/mixed").result
    assert answered.status == "already retrained" and not answered.event_due
    assert answered.retrained_by and answered.retrained_by["run_id"] == run.info.run_id
