"""Task bodies via ``.fn()`` against the real loopback S3 (no Prefect server needed)."""

from __future__ import annotations

from canvascraft.datasets import seed_dataset
from canvascraft.spec import load_spec
from tasks.ingest import ingest_snapshot
from tasks.preprocess import assemble_preprocess, find_preprocessed, plan_preprocess, preprocess_shard
from tasks.retry_policy import is_transient


def spec_for(bucket: str) -> dict:
    return {
        "name": "tasks",
        "seed": 1,
        "data": {"source": f"s3://{bucket}/digits", "min_valid_count": 10},
        "brushes": [{"name": "resize", "params": {"size": 8}}, {"name": "grayscale"}, {"name": "normalize"}],
    }


def test_ingest_then_preprocess_task_bodies(s3_client, bucket: str) -> None:
    seed_dataset("digits", s3_client, f"s3://{bucket}/digits", limit=20)
    spec = load_spec(spec_for(bucket))
    report = ingest_snapshot.fn(spec)
    assert report.valid == 20
    assert find_preprocessed.fn(report, spec) is None
    pieces = plan_preprocess.fn(report, spec)
    assert sum(len(p.entries) for p in pieces) == 20
    results = [preprocess_shard.fn(piece, spec) for piece in reversed(pieces)]  # in any order
    assert all(r.computed for r in results)
    shards = assemble_preprocess.fn(report, spec, pieces, results)
    assert shards.count == 20 and shards.shape == [1, 8, 8] and shards.dataset_version == report.dataset_version
    assert shards.image_ids == [e.sha256 for p in pieces for e in p.entries]
    again = find_preprocessed.fn(report, spec)  # published: the next run finds it
    assert again is not None and again.reused and again.key == shards.key


def client_error(status: int, code: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject"
    )


def test_transient_means_outage_not_refusal() -> None:
    """The policy behind every task's retry_condition_fn (real retries: tests/tasks/test_task_retries.py)."""
    from canvascraft.errors import IngestError, StorageError

    assert is_transient(client_error(503, "SlowDown")) and is_transient(client_error(500, "InternalError"))
    assert not is_transient(client_error(403, "AccessDenied")) and not is_transient(client_error(404, "NoSuchKey"))
    wrapped_404 = StorageError("bucket 'x' does not exist")
    wrapped_404.__cause__ = client_error(404, "NoSuchBucket")
    assert not is_transient(wrapped_404)  # a domain error is judged by the S3 error it was raised from
    assert is_transient(StorageError("download failed")) and is_transient(ConnectionError("reset"))
    assert not is_transient(IngestError("too few valid images")) and not is_transient(ValueError("bad"))
