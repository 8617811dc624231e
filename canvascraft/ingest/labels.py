"""``labels.csv``: optional ``key,label`` rows beside the images, parsed defensively (the file comes from anyone).

Whole-file problems (too large, not UTF-8, empty, no ``key``/``label`` header) raise ``IngestError`` naming the
file and what is allowed. Row problems (wrong field count, empty or over-long values, duplicate keys, unreadable
CSV) reject that row only, with its line number, key and reason; ingest reports them in its quarantine list.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from canvascraft.errors import IngestError
from canvascraft.ingest.manifest import QuarantineEntry
from canvascraft.storage import S3Uri

LABELS_MANIFEST = "labels.csv"  # optional "key,label" rows, keys relative to the prefix
# ~300k rows of "class/00001.png,class": more than Fashion-MNIST's 60k; a bigger dataset is split into prefixes
MAX_LABELS_BYTES = 16 * 1024 * 1024
MAX_KEY_BYTES = 1024  # S3's limit on an object key (UTF-8 bytes): a longer key cannot name an object
MAX_LABEL_CHARS = 256  # class names, not text: anything longer is a broken or hostile row
REQUIRED_COLUMNS = ("key", "label")
_SHOWN_CHARS = 80  # how much of a hostile value a message repeats


@dataclass(frozen=True)
class RejectedRow:
    """A labels.csv row that was not used: its line number (header = line 1), its key if readable, why."""

    row: int
    key: str | None
    reason: str


@dataclass(frozen=True)
class ParsedLabels:
    """Labels by relative key, the line each came from, the header's columns, and the rejected rows."""

    labels: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    columns: tuple[str, ...] = REQUIRED_COLUMNS
    rejected: tuple[RejectedRow, ...] = ()


def shorten(value: str, limit: int = _SHOWN_CHARS) -> str:
    """``value``, cut to ``limit`` characters (with its full length) so a 1 MB field cannot flood a message."""
    return value if len(value) <= limit else f"{value[:limit]}... ({len(value)} characters)"


def row_problem(key: str, label: str) -> str | None:
    """Why a ``(key, label)`` pair cannot be used, or None."""
    if not key:
        return "empty key"
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return f"key is {len(key.encode('utf-8'))} bytes of UTF-8; at most {MAX_KEY_BYTES} allowed (S3's key limit)"
    if not label:
        return "empty label; give a label, or leave the key out to label it by its first sub-folder"
    if len(label) > MAX_LABEL_CHARS:
        return f"label is {len(label)} characters; at most {MAX_LABEL_CHARS} allowed"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in label):
        return "label contains control characters (a newline, tab or NUL); allowed: printable text"
    return None


def _decode(data: bytes, source: str) -> str:
    """UTF-8 text of ``data`` (a UTF-8 BOM is dropped); IngestError naming the first bad byte otherwise."""
    if len(data) > MAX_LABELS_BYTES:
        raise IngestError(
            f"{source} is {len(data)} bytes; at most {MAX_LABELS_BYTES} bytes (16 MiB) allowed: split "
            "the images over several prefixes, each with its own labels.csv (data.extra_sources)"
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise IngestError(
            f"{source} is UTF-16 (it starts with a UTF-16 byte-order mark); allowed encoding: UTF-8 "
            "(with or without a BOM): save it again as 'CSV UTF-8'"
        )
    try:
        return data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM: it must just work
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise IngestError(
            f"{source} is not UTF-8: byte 0x{data[exc.start]:02x} at line {line} (byte offset "
            f"{exc.start}); allowed encoding: UTF-8, with or without a BOM: save it again as UTF-8 "
            "(e.g. iconv -f cp1252 -t utf-8)"
        ) from None


def _header(reader: Any, source: str) -> tuple[tuple[str, ...], int, int]:
    """The header's column names and the positions of ``key`` and ``label``; IngestError when they are missing."""
    example = "the first line must name the columns key,label (any order; other columns are ignored)"
    try:
        header = next(reader, None)
        while header == []:  # blank lines before the header
            header = next(reader, None)
    except csv.Error as exc:
        raise IngestError(f"{source}: header line is not readable CSV ({exc}); {example}") from None
    if header is None:
        raise IngestError(
            f"{source} is empty; {example}, then one row per image (or delete the file: images are "
            "then labelled by their first sub-folder)"
        )
    columns = tuple(name.strip().lower() for name in header)
    for name in REQUIRED_COLUMNS:
        if columns.count(name) > 1:
            raise IngestError(f"{source}: header names column {name!r} {columns.count(name)} times; {example}")
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        hint = ""
        if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
            hint = " (the file looks ';', tab or '|' separated: labels.csv must be comma-separated)"
        shown = [shorten(name) for name in header]
        raise IngestError(f"{source}: header {shown} has no column {' or '.join(map(repr, missing))}{hint}; {example}")
    return columns, columns.index("key"), columns.index("label")


def parse_labels(data: bytes, source: str) -> ParsedLabels:
    """Parse labels.csv bytes (``source`` names the file in messages): labels plus rejected rows, or IngestError."""
    reader = csv.reader(io.StringIO(_decode(data, source), newline=""))
    columns, key_at, label_at = _header(reader, source)
    labels: dict[str, str] = {}
    rows: dict[str, int] = {}
    rejected: list[RejectedRow] = []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # csv's own per-field cap (csv.field_size_limit, process-wide: left alone) is far above ours
            reason = (
                f"a field is longer than {MAX_LABEL_CHARS} characters (label) or {MAX_KEY_BYTES} bytes (key)"
                if "field larger than field limit" in str(exc)
                else f"unreadable CSV: {exc}"
            )
            rejected.append(RejectedRow(start, None, reason))
            continue
        if not row:  # a blank line holds no data
            continue
        spans = (
            f" (the row spans lines {start}-{reader.line_num}: an unclosed '\"' quote?)"
            if reader.line_num > start
            else ""
        )
        # More fields than columns: an unquoted comma shifted the values. Fewer: fine while key and label are there
        # (a trailing optional column left out).
        if len(row) > len(columns) or len(row) <= max(key_at, label_at):
            key = shorten(row[key_at]) if len(row) > key_at else None
            fix = "quote a value that contains a comma" if len(row) > len(columns) else "give both key and label"
            reason = (
                f"{len(row)} field{'s' if len(row) != 1 else ''}, the header has {len(columns)} "
                f"({','.join(columns)}); {fix}"
            )
            rejected.append(RejectedRow(start, key, reason + spans))
            continue
        key, label = row[key_at], row[label_at]
        problem = row_problem(key, label)
        if problem is not None:
            rejected.append(RejectedRow(start, shorten(key), problem + spans))
        elif key in rows:
            # The first row wins and every later one is reported: one stray row must not fail an ingest of
            # thousands of images, and the report shows which label was used.
            first = rows[key]
            same = labels[key] == label
            detail = "same label" if same else f"label {shorten(labels[key])!r} kept, this row says {shorten(label)!r}"
            rejected.append(RejectedRow(start, shorten(key), f"duplicate of row {first} ({detail})"))
        else:
            labels[key], rows[key] = label, start
    return ParsedLabels(labels, rows, columns, tuple(rejected))


def labels_uri(uri: S3Uri) -> str:
    """``s3://bucket/prefix/labels.csv`` of a source prefix."""
    return f"s3://{uri.bucket}/{uri.folder}{LABELS_MANIFEST}"


def fetch_labels_bytes(client: Any, uri: S3Uri) -> bytes | None:
    """The bytes of ``<prefix>/labels.csv``, None when there is none; IngestError, unread, when above the cap."""
    try:
        response = client.get_object(Bucket=uri.bucket, Key=uri.folder + LABELS_MANIFEST)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey"}:
            return None
        raise
    body = response["Body"]
    try:
        # The size comes from the response headers, before a byte of the body is read: a 100 MB file is refused
        # without being downloaded, and the bounded read holds even if a server reported a wrong length.
        size = int(response.get("ContentLength") or 0)
        if size > MAX_LABELS_BYTES:
            raise IngestError(
                f"{labels_uri(uri)} is {size} bytes; at most {MAX_LABELS_BYTES} bytes (16 MiB) "
                "allowed: split the images over several prefixes, each with its own labels.csv "
                "(data.extra_sources)"
            )
        return body.read(MAX_LABELS_BYTES + 1)
    finally:
        body.close()  # an unread body is dropped with its connection instead of being drained


def read_labels(client: Any, uri: S3Uri) -> ParsedLabels:
    """Labels of ``<prefix>/labels.csv`` (none when the file is absent); IngestError for an unusable file."""
    data = fetch_labels_bytes(client, uri)
    return ParsedLabels() if data is None else parse_labels(data, labels_uri(uri))


def quarantine_entries(uri: S3Uri, parsed: ParsedLabels) -> list[QuarantineEntry]:
    """The rejected rows as ingest-report quarantine entries (uri = the labels.csv, reason names row and key)."""
    key = uri.folder + LABELS_MANIFEST
    return [
        # "labels.csv row rejected" before the first ':' is the reason's category (check_minimums groups by it);
        # size 0: a row is not an object, and no bytes are filed in the quarantine folder for it
        QuarantineEntry(
            uri=labels_uri(uri),
            key=key,
            size=0,
            reason=f"labels.csv row rejected: row {row.row}, key "
            f"{'unreadable' if row.key is None else repr(row.key)}: {row.reason}",
        )
        for row in parsed.rejected
    ]
