"""Objects of a snapshot fetched into a worker's cache: damaged copies are fetched again, never used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from canvascraft.errors import StorageError
from canvascraft.hashing import sha256_bytes
from canvascraft.ingest import ImageRules, SnapshotManifest, ingest
from canvascraft.ingest.cache import ObjectCache
from canvascraft.ingest.snapshots import fetch_objects
from tests.conftest import png_bytes


def snapshot(client: Any, bucket: str, tmp_path: Path) -> SnapshotManifest:
    for i in range(3):
        client.put_object(Bucket=bucket, Key=f"imgs/{i}.png", Body=png_bytes((16, 16), color=50 * i))
    report = ingest([f"s3://{bucket}/imgs"], client, tmp_path / "ingest-cache", ImageRules())
    return SnapshotManifest.load(report.manifest_path)


def test_a_worker_refetches_a_truncated_copy_and_with_verify_a_same_size_damaged_one(
    s3_client, bucket: str, tmp_path: Path
) -> None:
    manifest = snapshot(s3_client, bucket, tmp_path)
    cache = ObjectCache(tmp_path / "worker-cache")
    paths = fetch_objects(manifest.entries, cache, s3_client)
    entry = manifest.entries[1]
    original = paths[entry.sha256].read_bytes()
    paths[entry.sha256].write_bytes(original[:10])
    assert fetch_objects(manifest.entries, cache, s3_client)[entry.sha256].read_bytes() == original
    flipped = original[:-1] + bytes([original[-1] ^ 0xFF])
    paths[entry.sha256].write_bytes(flipped)
    assert fetch_objects(manifest.entries, cache, s3_client)[entry.sha256].read_bytes() == flipped  # size only
    again = fetch_objects(manifest.entries, cache, s3_client, verify=True)[entry.sha256].read_bytes()
    assert again == original and sha256_bytes(again) == entry.sha256


def test_a_source_object_gone_is_a_storage_error_naming_it(s3_client, bucket: str, tmp_path: Path) -> None:
    manifest = snapshot(s3_client, bucket, tmp_path)
    s3_client.delete_object(Bucket=bucket, Key=manifest.entries[0].key)
    with pytest.raises(StorageError, match=f"fetch of {manifest.entries[0].uri} "):
        fetch_objects(manifest.entries, ObjectCache(tmp_path / "worker-cache"), s3_client)
