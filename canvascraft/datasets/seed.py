"""Seed an S3 prefix with a real dataset: scikit-learn's digits, Debian's Fashion-MNIST, or a local folder."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from canvascraft.errors import DatasetUnavailableError, IngestError, SpecError
from canvascraft.ingest.labels import (
    LABELS_MANIFEST,
    MAX_LABELS_BYTES,
    ParsedLabels,
    fetch_labels_bytes,
    labels_uri,
    parse_labels,
    row_problem,
    shorten,
)
from canvascraft.storage import S3Uri, ensure_bucket, list_objects

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
FASHION_MNIST_CLASSES = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}

Sample = tuple[str, str, bytes]  # (relative key, label, encoded bytes)


def _png(pixels: np.ndarray) -> bytes:
    """Encode a uint8 HxW array as a grayscale PNG."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _digits(limit: int | None) -> Iterator[Sample]:
    """scikit-learn's bundled 8x8 digits (1,797 images, values 0-16) as PNGs."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    count = len(bunch.images) if limit is None else min(limit, len(bunch.images))
    for index in range(count):
        pixels = np.round(bunch.images[index] * (255.0 / 16.0)).astype(np.uint8)
        label = str(int(bunch.target[index]))
        yield f"{label}/{index:05d}.png", label, _png(pixels)


def _read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (LeCun's MNIST format: magic, big-endian dims, uint8 payload)."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion_split(split: str, limit: int | None, root: Path, start: int = 0) -> Iterator[Sample]:
    """One split (``train``: 60k, ``t10k``: 10k) of Fashion-MNIST (28x28) from Debian's ``dataset-fashion-mnist``."""
    images_path, labels_path = root / f"{split}-images-idx3-ubyte.gz", root / f"{split}-labels-idx1-ubyte.gz"
    if not images_path.is_file() or not labels_path.is_file():
        raise DatasetUnavailableError(
            f"Fashion-MNIST files not found under {root}; install the Debian package "
            "'dataset-fashion-mnist' (apt-get install dataset-fashion-mnist; `make demo` does this where apt works)"
        )
    images, labels = _read_idx(images_path), _read_idx(labels_path)
    count = len(images) if limit is None else min(limit, len(images))
    for index in range(count):
        label = FASHION_MNIST_CLASSES[int(labels[index])]
        yield f"{label}/{start + index:05d}.png", label, _png(images[index])


def _fashion_mnist(limit: int | None, root: Path = FASHION_MNIST_DIR) -> Iterator[Sample]:
    """Fashion-MNIST's 60k training images (28x28)."""
    return _fashion_split("train", limit, root)


def _fashion_mnist_70k(limit: int | None, root: Path = FASHION_MNIST_DIR) -> Iterator[Sample]:
    """All 70k Fashion-MNIST images: the 60k training images, then the 10k test images (keys 60000-69999)."""
    yield from _fashion_split("train", limit, root)
    if limit is None or limit > 60_000:
        yield from _fashion_split("t10k", None if limit is None else limit - 60_000, root, start=60_000)


DATASETS: dict[str, Callable[[int | None], Iterator[Sample]]] = {
    "digits": _digits,
    "fashion-mnist": _fashion_mnist,
    "fashion-mnist-70k": _fashion_mnist_70k,
}


def load_dataset(name: str, limit: int | None = None) -> Iterator[Sample]:
    """Samples of a built-in dataset by name."""
    if name not in DATASETS:
        raise SpecError(f"unknown dataset {name!r}; allowed values: {', '.join(sorted(DATASETS))}")
    if limit is not None and limit < 1:
        raise SpecError(f"--limit must be >= 1, got {limit}")
    return DATASETS[name](limit)


def _folder_samples(folder: Path) -> Iterator[Sample]:
    """Images of a local folder; the first sub-folder level is the label."""
    if not folder.is_dir():
        raise SpecError(f"--from-dir {folder} is not a directory")
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        relative = path.relative_to(folder).as_posix()
        label = relative.split("/", 1)[0] if "/" in relative else ""
        yield relative, label, path.read_bytes()


def _merged_labels(
    existing: bytes | None, parsed: ParsedLabels, rows: list[tuple[str, str]], source: str
) -> tuple[bytes | None, int]:
    """(labels.csv with ``rows`` appended to the ``existing`` file, kept byte for byte; rows added); None if none.

    A key already labelled the same way is skipped; a key labelled differently is an IngestError naming the key and
    both labels (which one is right is the user's call, not the seeder's).
    """
    known = dict(parsed.labels)
    conflicts: list[str] = []
    new: list[tuple[str, str]] = []
    for key, label in rows:
        if key not in known:
            known[key] = label
            new.append((key, label))
        elif known[key] != label:
            where = f"row {parsed.rows[key]}" if key in parsed.rows else "this upload"
            conflicts.append(
                f"{shorten(key)!r} is {shorten(known[key])!r} ({where}), the upload says {shorten(label)!r}"
            )
    if conflicts:
        shown = "; ".join(conflicts[:5]) + (f"; and {len(conflicts) - 5} more" if len(conflicts) > 5 else "")
        raise IngestError(
            f"{source}: {len(conflicts)} key(s) already have another label: {shown}. Nothing was "
            "uploaded; allowed: the same label for a key. Fix labels.csv or the folder, then seed again"
        )
    if not new:
        return None, 0
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if existing is None:
        writer.writerow(["key", "label"])
    elif existing and not existing.endswith((b"\n", b"\r")):
        buffer.write("\r\n")  # the last row had no line end: the first new row must not extend it
    key_at, label_at = parsed.columns.index("key"), parsed.columns.index("label")
    for key, label in new:  # in the existing header's column order; other columns left empty
        row = [""] * len(parsed.columns)
        row[key_at], row[label_at] = key, label
        writer.writerow(row)
    merged = (existing or b"") + buffer.getvalue().encode("utf-8")
    if len(merged) > MAX_LABELS_BYTES:
        raise IngestError(
            f"{source} would be {len(merged)} bytes after adding {len(new)} rows; at most "
            f"{MAX_LABELS_BYTES} bytes (16 MiB) allowed: seed the images into another prefix"
        )
    # Read back as ingest will: an existing file ending inside an unclosed quote would swallow the appended rows
    check = parse_labels(merged, source)
    lost = [key for key, label in new if check.labels.get(key) != label]
    if lost:
        broken = "; ".join(f"row {r.row}: {r.reason}" for r in parsed.rejected[-3:]) or "its last row"
        raise IngestError(
            f"{source}: rows appended after the existing rows would not read back ({len(lost)} of "
            f"{len(new)}, e.g. {shorten(lost[0])!r}); the existing file is damaged ({broken}). "
            "Nothing was uploaded; fix labels.csv, then seed again"
        )
    return merged, len(new)


def upload_samples(
    samples: Iterable[Sample],
    client: Any,
    dest: str,
    *,
    max_workers: int = 16,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Upload samples under ``dest`` in parallel and merge their labels into ``labels.csv``; return counts and bytes.

    An existing labels.csv is kept: new keys are appended, known keys with the same label are skipped, a known key
    with another label fails before anything is uploaded.
    """
    uri = S3Uri.parse(dest)
    ensure_bucket(client, uri.bucket)
    source = labels_uri(uri)
    # Executor.map collects its iterables at once anyway (concurrent.futures docs): listing the samples first costs
    # no memory, and lets the labels be checked before the first upload.
    samples = list(samples)
    rows = [(relative, label) for relative, label, _ in samples if label]  # no label: labelled by sub-folder, or none
    for relative, label in rows:
        problem = row_problem(relative, label)
        if problem is not None:
            raise IngestError(
                f"{source}: cannot label {shorten(relative)!r} with {shorten(label)!r}: {problem}. "
                "Nothing was uploaded; rename the folder or file"
            )
    existing = fetch_labels_bytes(client, uri)
    parsed = ParsedLabels() if existing is None else parse_labels(existing, source)
    merged, added = _merged_labels(existing, parsed, rows, source)
    # Idempotent: an object already holding the same bytes (MD5 ETag of a single-part upload) is skipped.
    existing_etags = {o["Key"]: o["ETag"].strip('"') for o in list_objects(client, uri)}
    skipped = 0

    def put(sample: Sample) -> int:
        nonlocal skipped
        relative, _, data = sample
        if existing_etags.get(uri.folder + relative) == hashlib.md5(data, usedforsecurity=False).hexdigest():
            skipped += 1
            if on_progress:
                on_progress(1)
            return 0
        content_type = "image/png" if relative.endswith(".png") else "application/octet-stream"
        client.put_object(Bucket=uri.bucket, Key=uri.folder + relative, Body=data, ContentType=content_type)
        if on_progress:
            on_progress(1)
        return len(data)

    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        total_bytes = sum(pool.map(put, samples))
    if merged is not None:  # after the images: an ingest never meets a labelled key whose image is not there yet
        client.put_object(Bucket=uri.bucket, Key=uri.folder + LABELS_MANIFEST, Body=merged)
    return {
        "dest": str(uri),
        "objects": len(samples),
        "uploaded": len(samples) - skipped,
        "skipped": skipped,
        "bytes_uploaded": total_bytes,
        "labels": len({label for _, label in rows}),
        "label_rows_added": added,
        "label_rows_kept": len(parsed.labels),
    }


def seed_dataset(name: str, client: Any, dest: str, *, limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
    """Write a built-in dataset to ``dest`` as PNG objects plus ``labels.csv``."""
    return upload_samples(load_dataset(name, limit), client, dest, **kwargs)


def seed_from_dir(folder: Path, client: Any, dest: str, **kwargs: Any) -> dict[str, Any]:
    """Upload a user's image folder (class sub-folders become labels)."""
    return upload_samples(_folder_samples(folder), client, dest, **kwargs)
