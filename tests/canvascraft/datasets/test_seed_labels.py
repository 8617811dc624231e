"""Seeding into a prefix that already has a labels.csv merges the labels (on the loopback S3 server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from canvascraft.datasets import seed_from_dir
from canvascraft.errors import IngestError
from canvascraft.ingest import ImageRules, SnapshotManifest, ingest
from canvascraft.ingest.labels import parse_labels
from canvascraft.storage import S3Uri, list_objects
from tests.conftest import png_bytes


def folder(root: Path, files: dict[str, int]) -> Path:
    """A local image folder: relative path -> grey level."""
    for relative, color in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(png_bytes(color=color))
    return root


def labels_csv(client, bucket: str) -> bytes:
    return client.get_object(Bucket=bucket, Key="mine/labels.csv")["Body"].read()


def keys(client, bucket: str) -> set[str]:
    return {o["Key"] for o in list_objects(client, S3Uri.parse(f"s3://{bucket}/mine"))}


def test_second_seed_merges_into_existing_labels(s3_client, bucket: str, tmp_path: Path) -> None:
    dest = f"s3://{bucket}/mine"
    first = seed_from_dir(folder(tmp_path / "a", {"red/1.png": 1, "blue/1.png": 2}), s3_client, dest)
    assert first["label_rows_added"] == 2 and first["label_rows_kept"] == 0
    second = seed_from_dir(folder(tmp_path / "b", {"green/1.png": 3, "red/1.png": 1}), s3_client, dest)
    assert second["label_rows_added"] == 1 and second["label_rows_kept"] == 2

    parsed = parse_labels(labels_csv(s3_client, bucket), "labels.csv")
    assert parsed.labels == {"blue/1.png": "blue", "red/1.png": "red", "green/1.png": "green"}
    assert not parsed.rejected  # red/1.png (same label again) was not appended twice
    report = ingest([dest], s3_client, tmp_path / "cache", ImageRules())
    entries = SnapshotManifest.load(report.manifest_path).entries
    assert {e.key: e.label for e in entries} == {
        "mine/blue/1.png": "blue",
        "mine/red/1.png": "red",
        "mine/green/1.png": "green",
    }


def test_unchanged_reseed_leaves_labels_csv_untouched(s3_client, bucket: str, tmp_path: Path) -> None:
    source = folder(tmp_path / "a", {"red/1.png": 1})
    seed_from_dir(source, s3_client, f"s3://{bucket}/mine")
    etag = s3_client.head_object(Bucket=bucket, Key="mine/labels.csv")["ETag"]
    again = seed_from_dir(source, s3_client, f"s3://{bucket}/mine")
    assert again["label_rows_added"] == 0 and again["skipped"] == 1
    assert s3_client.head_object(Bucket=bucket, Key="mine/labels.csv")["ETag"] == etag


def test_conflicting_label_names_key_and_both_labels_and_uploads_nothing(
    s3_client, bucket: str, tmp_path: Path
) -> None:
    existing = b"key,label\nred/1.png,crimson\n"
    s3_client.put_object(Bucket=bucket, Key="mine/labels.csv", Body=existing)
    with pytest.raises(IngestError, match=r"'red/1.png' is 'crimson' \(row 2\), the upload says 'red'"):
        seed_from_dir(folder(tmp_path / "a", {"red/1.png": 1, "blue/1.png": 2}), s3_client, f"s3://{bucket}/mine")
    assert keys(s3_client, bucket) == {"mine/labels.csv"}
    assert labels_csv(s3_client, bucket) == existing


def test_existing_file_in_another_layout_is_appended_to(s3_client, bucket: str, tmp_path: Path) -> None:
    # Excel-style: BOM, label column first, an extra column, no line end after the last row
    existing = "\ufefflabel,key,notes\r\nred,red/1.png,checked by hand\r\nold,legacy/x.png,".encode()
    s3_client.put_object(Bucket=bucket, Key="mine/labels.csv", Body=existing)
    result = seed_from_dir(folder(tmp_path / "a", {"red/1.png": 1, "blue/1.png": 2}), s3_client, f"s3://{bucket}/mine")
    assert result["label_rows_added"] == 1
    merged = labels_csv(s3_client, bucket)
    assert merged.startswith(existing)  # every existing byte kept, BOM and notes included
    parsed = parse_labels(merged, "labels.csv")
    assert parsed.labels == {"red/1.png": "red", "legacy/x.png": "old", "blue/1.png": "blue"}
    assert not parsed.rejected


def test_damaged_existing_file_is_not_appended_to(s3_client, bucket: str, tmp_path: Path) -> None:
    existing = b'key,label\nold/1.png,"unclosed\n'
    s3_client.put_object(Bucket=bucket, Key="mine/labels.csv", Body=existing)
    with pytest.raises(IngestError, match=r"would not read back .* the existing file is damaged \(row 2"):
        seed_from_dir(folder(tmp_path / "a", {"red/1.png": 1}), s3_client, f"s3://{bucket}/mine")
    assert labels_csv(s3_client, bucket) == existing and keys(s3_client, bucket) == {"mine/labels.csv"}


def test_unreadable_existing_file_stops_the_seed(s3_client, bucket: str, tmp_path: Path) -> None:
    s3_client.put_object(Bucket=bucket, Key="mine/labels.csv", Body="key,label\nx.png,é\n".encode("latin-1"))
    with pytest.raises(IngestError, match=f"s3://{bucket}/mine/labels.csv is not UTF-8"):
        seed_from_dir(folder(tmp_path / "a", {"red/1.png": 1}), s3_client, f"s3://{bucket}/mine")
    assert keys(s3_client, bucket) == {"mine/labels.csv"}


def test_top_level_images_get_no_empty_label_row(s3_client, bucket: str, tmp_path: Path) -> None:
    seed_from_dir(folder(tmp_path / "a", {"loose.png": 1, "red/1.png": 2}), s3_client, f"s3://{bucket}/mine")
    parsed = parse_labels(labels_csv(s3_client, bucket), "labels.csv")
    assert parsed.labels == {"red/1.png": "red"} and not parsed.rejected
