"""Ingest against a real S3-compatible server on loopback (rclone serve s3 over a temp folder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from canvascraft.errors import IngestError
from canvascraft.ingest import ImageRules, SnapshotManifest, ingest
from canvascraft.ingest.cache import ObjectCache
from canvascraft.storage import S3Uri, list_objects
from tests.conftest import png_bytes, truncated_png


def put(client, bucket: str, key: str, data: bytes) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=data)


def seed_mixed(client, bucket: str) -> None:
    for i in range(6):
        put(client, bucket, f"imgs/cat/{i}.png", png_bytes((16, 16), color=10 * i))
    put(client, bucket, "imgs/dog/0.png", png_bytes((16, 16), color=200))
    put(client, bucket, "imgs/notes.txt", b"not an image")
    put(client, bucket, "imgs/dog/broken.png", truncated_png())
    put(client, bucket, "imgs/tiny.png", png_bytes((2, 2)))
    put(client, bucket, "imgs/labels.csv", b"key,label\ndog/0.png,puppy\n")


def run(client, bucket: str, cache: Path, **kwargs):
    return ingest([f"s3://{bucket}/imgs"], client, cache, ImageRules(), **kwargs)


def test_good_and_bad_objects(s3_client, bucket: str, tmp_path: Path) -> None:
    seed_mixed(s3_client, bucket)
    report = run(s3_client, bucket, tmp_path / "cache")
    assert (report.total, report.valid, len(report.quarantined)) == (10, 7, 3)
    reasons = {q.key: q.reason for q in report.quarantined}
    assert reasons["imgs/notes.txt"] == "not a decodable image"
    assert reasons["imgs/dog/broken.png"].startswith("corrupt image data")
    assert reasons["imgs/tiny.png"].startswith("too small")
    manifest = SnapshotManifest.load(report.manifest_path)
    assert manifest.dataset_version == report.dataset_version
    labels = {e.key: e.label for e in manifest.entries}
    assert labels["imgs/dog/0.png"] == "puppy" and labels["imgs/cat/3.png"] == "cat"
    cache = ObjectCache(tmp_path / "cache")
    for entry in manifest.entries:  # every valid image is in the content-addressed cache
        assert cache.object_path(entry.sha256).is_file()
    for q in report.quarantined:  # every rejected object is kept, never lost
        assert cache.quarantine_path(q.sha256).read_bytes()
    # nothing deleted from the source
    assert len(list(list_objects(s3_client, S3Uri.parse(f"s3://{bucket}/imgs")))) == 11


def test_incremental_ingest_downloads_nothing_unchanged(s3_client, bucket: str, tmp_path: Path) -> None:
    seed_mixed(s3_client, bucket)
    first = run(s3_client, bucket, tmp_path / "cache")
    second = run(s3_client, bucket, tmp_path / "cache")
    assert first.downloaded == 10 and second.downloaded == 0 and second.bytes_downloaded == 0
    assert second.dataset_version == first.dataset_version
    assert [q.reason for q in second.quarantined] == [q.reason for q in first.quarantined]
    put(s3_client, bucket, "imgs/cat/0.png", png_bytes((16, 16), color=255))  # changed content
    put(s3_client, bucket, "imgs/cat/new.png", png_bytes((16, 16), color=77))  # new object
    third = run(s3_client, bucket, tmp_path / "cache")
    assert third.downloaded == 2 and third.valid == 8
    assert third.dataset_version != first.dataset_version


def test_changed_rules_rejudge_from_cache_without_download(s3_client, bucket: str, tmp_path: Path) -> None:
    seed_mixed(s3_client, bucket)
    run(s3_client, bucket, tmp_path / "cache")
    strict = ingest([f"s3://{bucket}/imgs"], s3_client, tmp_path / "cache", ImageRules(min_side=32), min_valid_count=0)
    assert strict.downloaded == 0 and strict.valid == 0
    assert all(q.reason.startswith(("too small", "not a", "corrupt")) for q in strict.quarantined)


def test_too_few_valid_images_fails_clearly_and_keeps_the_report(s3_client, bucket: str, tmp_path: Path) -> None:
    seed_mixed(s3_client, bucket)
    with pytest.raises(IngestError) as caught:
        run(s3_client, bucket, tmp_path / "cache", min_valid_fraction=0.9)
    message = str(caught.value)
    assert "7 valid of 10 objects" in message and "min_valid_fraction" in message
    report_path = Path(message.rsplit("full report: ", 1)[1])
    assert len(json.loads(report_path.read_text())["quarantined"]) == 3


def test_oversized_object_is_quarantined_without_download(s3_client, bucket: str, tmp_path: Path) -> None:
    put(s3_client, bucket, "imgs/big.png", png_bytes((64, 64)))
    report = ingest([f"s3://{bucket}/imgs"], s3_client, tmp_path / "cache", ImageRules(max_bytes=50), min_valid_count=0)
    assert report.downloaded == 0 and "not downloaded" in report.quarantined[0].reason


def test_missing_bucket_is_a_clear_error(s3_client, tmp_path: Path) -> None:
    from canvascraft.errors import StorageError

    with pytest.raises(StorageError, match="no-such-bucket-cc"):
        ingest(["s3://no-such-bucket-cc/x"], s3_client, tmp_path / "cache", ImageRules())


def test_rejudge_with_unchanged_verdict_leaves_the_cached_file_alone(s3_client, bucket: str, tmp_path: Path) -> None:
    seed_mixed(s3_client, bucket)
    first = run(s3_client, bucket, tmp_path / "cache")
    cache = ObjectCache(tmp_path / "cache")
    entries = SnapshotManifest.load(first.manifest_path).entries
    inodes = {e.sha256: cache.object_path(e.sha256).stat().st_ino for e in entries}
    # different rules (new rules hash) that every valid 16x16 image still passes: re-judged, same verdict
    again = ingest([f"s3://{bucket}/imgs"], s3_client, tmp_path / "cache", ImageRules(min_side=5), min_valid_count=0)
    assert again.downloaded == 0 and again.valid == first.valid
    assert {sha: cache.object_path(sha).stat().st_ino for sha in inodes} == inodes  # not rewritten (a put renames)


def test_missing_bucket_is_a_storage_error_naming_it(s3_client, tmp_path: Path) -> None:
    from canvascraft.errors import StorageError

    with pytest.raises(StorageError, match="bucket 'no-such-bucket-here' of s3://no-such-bucket-here/x does not exist"):
        ingest(["s3://no-such-bucket-here/x"], s3_client, tmp_path / "cache", ImageRules())
