"""Hostile labels.csv: whole-file errors name the file and what is allowed; bad rows are rejected and reported."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from canvascraft.errors import IngestError
from canvascraft.ingest import SnapshotManifest, ingest
from canvascraft.ingest.labels import (
    MAX_LABEL_CHARS,
    MAX_LABELS_BYTES,
    ParsedLabels,
    parse_labels,
    read_labels,
)
from canvascraft.ingest.validation import ImageRules
from canvascraft.storage import S3Uri
from tests.conftest import png_bytes

SOURCE = "s3://b/p/labels.csv"


def parse(text: str | bytes) -> ParsedLabels:
    return parse_labels(text.encode("utf-8") if isinstance(text, str) else text, SOURCE)


def reasons(parsed: ParsedLabels) -> dict[int, str]:
    return {r.row: r.reason for r in parsed.rejected}


def test_plain_file() -> None:
    parsed = parse("key,label\ncat/1.png,cat\ndog/1.png,dog\n")
    assert parsed.labels == {"cat/1.png": "cat", "dog/1.png": "dog"} and not parsed.rejected
    assert parsed.rows == {"cat/1.png": 2, "dog/1.png": 3}


def test_utf8_bom_and_crlf_just_work() -> None:
    parsed = parse(b"\xef\xbb\xbfkey,label\r\nk\xc3\xa4fer/1.png,k\xc3\xa4fer\r\n")
    assert parsed.labels == {"käfer/1.png": "käfer"} and not parsed.rejected


def test_not_utf8_names_file_line_and_encoding() -> None:
    data = "key,label\nok.png,ok\ncafé/1.png,café\n".encode("cp1252")
    with pytest.raises(
        IngestError, match=r"s3://b/p/labels.csv is not UTF-8: byte 0xe9 at line 3.*allowed encoding: UTF-8"
    ):
        parse(data)


def test_utf16_is_named() -> None:
    with pytest.raises(IngestError, match=r"labels\.csv is UTF-16.*allowed encoding: UTF-8"):
        parse("key,label\na.png,a\n".encode("utf-16"))


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\n\r\n"], ids=["zero-bytes", "bom-only", "blank-lines"])
def test_empty_file(data: bytes) -> None:
    with pytest.raises(
        IngestError, match=r"s3://b/p/labels.csv is empty; the first line must name the columns key,label"
    ):
        parse(data)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cat/1.png,cat\n", r"header \['cat/1.png', 'cat'\] has no column 'key' or 'label'"),
        ("key,class\na.png,cat\n", r"header \['key', 'class'\] has no column 'label'"),
        ("key;label\na.png;cat\n", r"has no column 'key' or 'label' \(the file looks ';', tab or '\|' separated"),
        ("key,label,label\na.png,x,y\n", "header names column 'label' 2 times"),
    ],
    ids=["no-header", "missing-column", "semicolons", "repeated-column"],
)
def test_missing_header_or_column(text: str, message: str) -> None:
    with pytest.raises(IngestError, match=message) as caught:
        parse(text)
    assert str(caught.value).startswith(SOURCE) and "key,label" in str(caught.value)


def test_file_above_the_cap_is_refused_with_size_and_cap() -> None:
    data = b"key,label\n" + b"a" * MAX_LABELS_BYTES
    with pytest.raises(IngestError, match=f"is {len(data)} bytes; at most {MAX_LABELS_BYTES} bytes \\(16 MiB\\)"):
        parse(data)


def test_header_columns_in_any_order_extra_columns_ignored() -> None:
    parsed = parse(" Label ,KEY,notes\ncat,a.png,from the vet\ndog,b.png\n")
    assert parsed.labels == {"a.png": "cat", "b.png": "dog"} and not parsed.rejected
    assert parsed.columns == ("label", "key", "notes")


def test_short_and_long_rows_are_rejected_with_row_and_key() -> None:
    parsed = parse("key,label\na.png\nb.png,cat,extra\nc.png,ok\n,\n")
    assert parsed.labels == {"c.png": "ok"}
    assert [(r.row, r.key) for r in parsed.rejected] == [(2, "a.png"), (3, "b.png"), (5, "")]
    found = reasons(parsed)
    assert found[2].startswith("1 field, the header has 2 (key,label)")
    assert found[3].startswith("3 fields, the header has 2") and "quote a value that contains a comma" in found[3]
    assert found[5] == "empty key"


def test_duplicate_keys_keep_the_first_row_and_report_the_later_ones() -> None:
    parsed = parse("key,label\na.png,cat\nb.png,dog\na.png,cat\na.png,tiger\n")
    assert parsed.labels == {"a.png": "cat", "b.png": "dog"}
    assert reasons(parsed) == {
        4: "duplicate of row 2 (same label)",
        5: "duplicate of row 2 (label 'cat' kept, this row says 'tiger')",
    }


def test_megabyte_field_is_a_rejected_row_with_a_short_reason() -> None:
    huge = "x" * (1024 * 1024)
    parsed = parse(f"key,label\na.png,{huge}\n{huge}.png,cat\nb.png,ok\n")
    assert parsed.labels == {"b.png": "ok"}
    assert [r.row for r in parsed.rejected] == [2, 3]
    assert all("longer than" in r.reason and len(r.reason) < 200 for r in parsed.rejected)


def test_long_label_and_key_below_the_csv_limit_are_capped() -> None:
    label, key = "y" * (MAX_LABEL_CHARS + 1), "k" * 2000
    parsed = parse(f"key,label\na.png,{label}\n{key},cat\n")
    assert not parsed.labels
    found = {r.row: r for r in parsed.rejected}
    assert found[2].reason == f"label is {MAX_LABEL_CHARS + 1} characters; at most {MAX_LABEL_CHARS} allowed"
    assert found[3].reason.startswith("key is 2000 bytes of UTF-8; at most 1024 allowed")
    assert found[3].key is not None and len(found[3].key) < 120  # shortened: the report is not flooded


def test_empty_label_control_characters_and_unclosed_quote() -> None:
    parsed = parse('key,label\na.png,\nb.png,"two\nlines"\nc.png,"unclosed\nd.png,dog\n')
    found = reasons(parsed)
    assert found[2].startswith("empty label")
    assert found[3].startswith("label contains control characters")
    assert "spans lines 3-4" in found[3]
    assert "spans lines 5-6" in found[5]  # the quote swallowed d.png's row: reported, not silently lost
    assert not parsed.labels


def test_nul_bytes_and_blank_lines() -> None:
    parsed = parse(b"key,label\n\na.png,c\x00t\n\nb.png,dog\n")
    assert parsed.labels == {"b.png": "dog"}
    assert reasons(parsed)[3].startswith("label contains control characters")


# --- through S3 (the loopback server) -----------------------------------------------------------------------------


def seed(client, bucket: str, labels: bytes) -> None:
    for key in ("cat/1.png", "cat/2.png", "dog/1.png"):
        client.put_object(Bucket=bucket, Key=f"imgs/{key}", Body=png_bytes((16, 16), color=len(key)))
    client.put_object(Bucket=bucket, Key="imgs/labels.csv", Body=labels)


def test_rejected_rows_appear_in_the_ingest_report(s3_client, bucket: str, tmp_path: Path) -> None:
    seed(s3_client, bucket, b"\xef\xbb\xbfkey,label\r\ncat/1.png,tabby\r\ndog/1.png\r\ncat/1.png,lion\r\n")
    report = ingest([f"s3://{bucket}/imgs"], s3_client, tmp_path / "cache", ImageRules())
    assert (report.total, report.valid) == (3, 3)  # rows are reported, not counted as objects
    rows = [q for q in report.quarantined if q.key == "imgs/labels.csv"]
    assert [q.reason for q in rows] == [
        (
            "labels.csv row rejected: row 3, key 'dog/1.png': 1 field, the header has 2 (key,label); "
            "give both key and label"
        ),
        (
            "labels.csv row rejected: row 4, key 'cat/1.png': duplicate of row 2 "
            "(label 'tabby' kept, this row says 'lion')"
        ),
    ]
    assert {q.uri for q in rows} == {f"s3://{bucket}/imgs/labels.csv"}
    assert report.summary()["quarantined"][0]["reason"].startswith("labels.csv row rejected")
    labels = {e.key: e.label for e in SnapshotManifest.load(report.manifest_path).entries}
    assert labels == {"imgs/cat/1.png": "tabby", "imgs/cat/2.png": "cat", "imgs/dog/1.png": "dog"}


def test_not_utf8_labels_fail_the_ingest_naming_the_object(s3_client, bucket: str, tmp_path: Path) -> None:
    seed(s3_client, bucket, "key,label\ncat/1.png,chat noir é\n".encode("latin-1"))
    with pytest.raises(IngestError, match=f"s3://{bucket}/imgs/labels.csv is not UTF-8: byte 0xe9 at line 2"):
        ingest([f"s3://{bucket}/imgs"], s3_client, tmp_path / "cache", ImageRules())


def test_100_mb_labels_is_refused_before_its_body_is_read(s3_client, s3_settings, bucket: str, tmp_path: Path) -> None:
    # A sparse 100 MB file written straight into the folder the loopback S3 serves: costs no disk and no upload
    # (before any request under the prefix: rclone caches the listings it has served).
    path = s3_settings.home / "s3" / bucket / "imgs" / "labels.csv"
    path.parent.mkdir()
    with path.open("wb") as handle:
        handle.truncate(100 * 1024 * 1024)
    head = s3_client.head_object(Bucket=bucket, Key="imgs/labels.csv")
    assert head["ContentLength"] == 100 * 1024 * 1024  # the server really offers 100 MB

    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(IngestError, match=f"imgs/labels.csv is 104857600 bytes; at most {MAX_LABELS_BYTES} bytes"):
            read_labels(s3_client, S3Uri.parse(f"s3://{bucket}/imgs"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, f"{peak} bytes allocated: the body was read"
    assert time.perf_counter() - started < 5
    with pytest.raises(IngestError, match="104857600 bytes"):  # and the ingest fails with that message
        ingest([f"s3://{bucket}/imgs"], s3_client, tmp_path / "cache", ImageRules())


def test_absent_labels_file_means_folder_labels(s3_client, bucket: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="imgs/cat/1.png", Body=png_bytes())
    assert read_labels(s3_client, S3Uri.parse(f"s3://{bucket}/imgs")) == ParsedLabels()
