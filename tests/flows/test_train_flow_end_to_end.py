"""The whole train flow end to end under the Prefect harness: loopback S3 -> brushes -> Feast -> Ray Tune (2 trials)
-> FID -> MLflow registry. Slow (a minute or two) and real: nothing is mocked."""

from __future__ import annotations

import mlflow
import pytest

from canvascraft.datasets import seed_dataset
from tests.spec_helpers import tiny_dcgan_spec

pytestmark = pytest.mark.e2e


def test_train_flow_publishes_a_promoted_model(prefect_harness, s3_client, bucket: str, session_dir) -> None:
    from flows.train import train

    seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=96)
    # an underscore: allowed in a pipeline name, not in a Prefect artifact key (tasks must sanitise it)
    spec = tiny_dcgan_spec(f"e2e_{bucket}", f"s3://{bucket}/digits", f"e2e-{bucket}")
    result = train(spec)
    assert result.valid == 96 and result.features.rows_written == 96
    assert len(result.search.trials) == 2
    score = result.evaluation.score
    assert score.n == 32 and score.dims == 64 and score.fid > 0
    published = result.publish
    assert published.promoted and published.aliases == ["candidate", "champion"]

    mlflow.set_tracking_uri(f"sqlite:///{session_dir / 'home' / 'mlflow.db'}")
    version = mlflow.MlflowClient().get_model_version(published.model, published.version)
    assert version.tags["dataset_version"] == result.dataset_version
    assert version.tags["prefect_flow_run_id"] and version.tags["brush_stack_hash"] and version.tags["spec_hash"]
    parent = mlflow.get_run(result.mlflow_run_id)
    assert parent.data.params["dataset_version"] == result.dataset_version and "fid" in parent.data.metrics

    from prefect.artifacts import Artifact

    for suffix in ("ingest", "trials", "evaluation", "summary"):
        assert Artifact.get(f"e2e-{bucket}-{suffix}") is not None, suffix
