"""Task bodies via ``.fn()`` against the real loopback S3 (no Prefect server needed)."""

from __future__ import annotations

from canvascraft.datasets import seed_dataset
from canvascraft.spec import load_spec
from tasks.ingest import ingest_snapshot
from tasks.preprocess import preprocess_snapshot
from tasks.retry_policy import retry_on_io as _retry_on_io


def spec_for(bucket: str) -> dict:
    return {"name": "tasks", "seed": 1, "data": {"source": f"s3://{bucket}/digits", "min_valid_count": 10},
            "brushes": [{"name": "resize", "params": {"size": 8}}, {"name": "grayscale"}, {"name": "normalize"}]}


def test_ingest_then_preprocess_task_bodies(s3_client, bucket: str) -> None:
    seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=20)
    spec = load_spec(spec_for(bucket))
    report = ingest_snapshot.fn(spec)
    assert report.valid == 20
    shards = preprocess_snapshot.fn(report, spec)
    assert shards.count == 20 and shards.shape == [1, 8, 8] and shards.dataset_version == report.dataset_version


class _State:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def result(self) -> None:
        raise self.exc


def test_retry_condition_retries_io_only() -> None:
    from canvascraft.errors import IngestError, StorageError

    assert _retry_on_io(None, None, _State(StorageError("timeout")))
    assert not _retry_on_io(None, None, _State(IngestError("too few valid images")))
