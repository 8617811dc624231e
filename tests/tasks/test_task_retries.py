"""Retries for real: tasks under the Prefect harness meet injected HTTP faults in front of the real loopback services.

The outage is a loopback proxy (tests/fault_proxy.py) answering the first matching requests with a genuine HTTP
error before forwarding to the real S3 / MLflow server; the clients' own retries are turned down to one attempt so
that the task's retry policy (``tasks/retry_policy.py``) is what is tested. AWS itself cannot run here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from canvascraft.datasets import seed_dataset
from canvascraft.settings import Settings, get_settings
from canvascraft.spec import load_spec
from tests.fault_proxy import fault_proxy

pytestmark = pytest.mark.usefixtures("prefect_harness")


def spec_for(bucket: str, min_valid_count: int = 5):
    return load_spec(
        {
            "name": "retries",
            "seed": 1,
            "data": {"source": f"s3://{bucket}/digits", "min_valid_count": min_valid_count},
            "brushes": [{"name": "resize", "params": {"size": 8}}, {"name": "normalize"}],
        }
    )


def attempts(task_run_id) -> int:
    """How many times Prefect ran a task run (1 = no retry)."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_task_run(task_run_id).run_count


def in_flow(task, *args):
    """Run ``task`` (retry delay shortened to 0) in a flow of its own: (final state type, message, result, run id).

    The flow returns plain values, not the state: a flow returning a failed state would fail (and raise) itself.
    """
    from prefect import flow

    @flow(name="retry-probe")
    def probe():
        state = task.with_options(retry_delay_seconds=0)(*args, return_state=True)
        result = state.result(raise_on_failure=False)
        return state.type.value, str(state.message), result, state.state_details.task_run_id

    return probe()


def run_ingest(spec):
    """The real ingest task in a flow of its own."""
    from tasks.ingest import ingest_snapshot

    return in_flow(ingest_snapshot, spec)


@pytest.fixture
def s3_behind_proxy(s3_settings: Settings, monkeypatch: pytest.MonkeyPatch):
    """Point the product's S3 client at a fault proxy in front of the real S3, with one botocore retry (an explicit
    endpoint takes its keys from boto3's chain, as on a worker: the embedded server's keys in AWS_* variables)."""
    credentials = s3_settings.s3_credentials()

    def use(proxy_url: str) -> None:
        monkeypatch.setenv("CANVASCRAFT_S3_ENDPOINT_URL", proxy_url)
        monkeypatch.setenv("CANVASCRAFT_S3_MAX_ATTEMPTS", "1")  # botocore's retries (legacy name): 2 attempts
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["aws_access_key_id"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["aws_secret_access_key"])

    return use, s3_settings.resolved_s3_endpoint_url


def test_s3_503_is_retried_and_the_ingest_succeeds(s3_client, bucket: str, s3_behind_proxy) -> None:
    seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=12)
    use, upstream = s3_behind_proxy
    # botocore makes 2 attempts per request here (s3_max_attempts=1 retry): both meet the 503, the task attempt fails
    with fault_proxy(upstream, failures=2, when=lambda method, path: path.endswith("/labels.csv")) as proxy:
        use(proxy.url)
        kind, _, report, run_id = run_ingest(spec_for(bucket))
    assert proxy.injected == [f"GET /{bucket}/digits/labels.csv"] * 2 and proxy.forwarded  # then the rest went through
    assert kind == "COMPLETED" and report.valid == 12
    assert attempts(run_id) == 2


def test_s3_access_denied_is_not_retried(s3_client, bucket: str, s3_behind_proxy) -> None:
    seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=3)
    use, upstream = s3_behind_proxy
    denied = b"<Error><Code>AccessDenied</Code><Message>injected</Message></Error>"
    with fault_proxy(
        upstream, failures=100, status=403, body=denied, when=lambda method, path: bucket in path
    ) as proxy:
        use(proxy.url)
        kind, message, _, run_id = run_ingest(spec_for(bucket))
    assert kind == "FAILED" and "AccessDenied" in message
    assert attempts(run_id) == 1 and len(proxy.injected) == 1  # botocore does not retry a 403 either


def test_too_few_valid_images_is_not_retried(s3_client, bucket: str) -> None:
    """A data/spec error (min_valid_count above what the source holds) fails at once, naming the field."""
    seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=3)
    kind, message, _, run_id = run_ingest(spec_for(bucket, min_valid_count=50))
    assert kind == "FAILED" and "min_valid_count >= 50" in message
    assert attempts(run_id) == 1


def test_missing_bucket_is_not_retried(s3_settings: Settings) -> None:
    kind, message, _, run_id = run_ingest(spec_for("no-such-bucket-for-retries"))
    assert kind == "FAILED" and "bucket 'no-such-bucket-for-retries'" in message and "does not exist" in message
    assert attempts(run_id) == 1


def test_mlflow_unavailable_is_retried(s3_client, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """start-tracking meets a 503 from MLflow (its client's own retries off), is retried by Prefect and succeeds."""
    from mlflow import MlflowClient

    from canvascraft.stack.process import free_port
    from canvascraft.stack.services import mlflow_service
    from tasks.ingest import ingest_snapshot
    from tasks.train import start_tracking

    seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=6)
    spec = spec_for(bucket)
    report = ingest_snapshot.fn(spec)
    server = mlflow_service(get_settings(home=tmp_path / "mlflow-home", mlflow_port=free_port(), use_embedded=False))
    server.start()
    try:
        with fault_proxy(
            server.url,
            failures=1,
            status=503,
            body=b"Service Unavailable",
            content_type="text/plain",
            when=lambda method, path: "/api/" in path,
        ) as proxy:
            monkeypatch.setenv("CANVASCRAFT_MLFLOW_TRACKING_URI", proxy.url)
            monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            kind, _, run_id, task_run_id = in_flow(start_tracking, spec, report)
        assert len(proxy.injected) == 1
        assert kind == "COMPLETED" and attempts(task_run_id) == 2
        run = MlflowClient(server.url).get_run(run_id)
        assert run.data.tags["canvascraft.dataset_version"] == report.dataset_version
    finally:
        server.stop()
