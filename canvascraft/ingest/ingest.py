"""Ingest: list and download ``s3://`` prefixes into the content-addressed cache, validating every object.

Incremental: an object whose ETag and size match the previous ingest (under the same validation rules) is not
downloaded again. Invalid objects are quarantined with a reason; nothing is dropped silently and nothing is
ever deleted from the source.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canvascraft.artifact_root import ArtifactRoot
from canvascraft.errors import IngestError, StorageError
from canvascraft.hashing import sha256_bytes
from canvascraft.ingest.cache import ObjectCache
from canvascraft.ingest.manifest import (
    IngestReport,
    ManifestEntry,
    QuarantineEntry,
    SnapshotManifest,
)
from canvascraft.ingest.validation import (
    ImageInfo,
    ImageRules,
    check_key,
    validate_image,
)
from canvascraft.storage import S3Uri, list_objects

LABELS_MANIFEST = "labels.csv"  # optional "key,label" rows, keys relative to the prefix

Progress = Callable[[int], None]


@dataclass(frozen=True)
class _Outcome:
    """What happened to one object."""

    key: str
    record: dict[str, Any]
    entry: ManifestEntry | None
    quarantine: QuarantineEntry | None
    downloaded_bytes: int


def read_labels(client: Any, uri: S3Uri) -> dict[str, str]:
    """Labels from ``<prefix>/labels.csv`` when present (``{relative key: label}``)."""
    try:
        body = client.get_object(Bucket=uri.bucket, Key=uri.folder + LABELS_MANIFEST)["Body"].read()
    except client.exceptions.NoSuchKey:
        return {}
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey"}:
            return {}
        raise
    rows = csv.DictReader(io.StringIO(body.decode("utf-8")))
    if rows.fieldnames is None or not {"key", "label"} <= set(rows.fieldnames):
        raise IngestError(f"{uri}{LABELS_MANIFEST}: expected a CSV header with columns key,label; got {rows.fieldnames}")
    return {row["key"]: row["label"] for row in rows}


def _label_for(relative_key: str, labels: dict[str, str]) -> str | None:
    """Label from the labels manifest, else the first sub-folder under the prefix, else None."""
    if relative_key in labels:
        return labels[relative_key]
    head, sep, _ = relative_key.partition("/")
    return head if sep else None


def _process_object(
    obj: dict[str, Any], uri: S3Uri, client: Any, cache: ObjectCache, rules: ImageRules, rules_hash: str,
    previous: dict[str, Any] | None, labels: dict[str, str],
) -> _Outcome:
    """Reuse the cached verdict or download, hash, validate and file one object."""
    key, etag, size = obj["Key"], obj["ETag"].strip('"'), int(obj["Size"])
    full_uri = f"s3://{uri.bucket}/{key}"
    relative = key[len(uri.folder):]
    label = _label_for(relative, labels)

    def quarantined(reason: str, sha: str | None, downloaded: int) -> _Outcome:
        record = {"etag": etag, "size": size, "sha256": sha, "rules": rules_hash, "reason": reason}
        return _Outcome(key, record, None, QuarantineEntry(uri=full_uri, key=key, reason=reason, size=size, sha256=sha), downloaded)

    def admitted(sha: str, info: ImageInfo, downloaded: int) -> _Outcome:
        record = {"etag": etag, "size": size, "sha256": sha, "rules": rules_hash, "reason": None,
                  "width": info.width, "height": info.height, "mode": info.mode, "format": info.format}
        # model_construct: every field is built here from typed values (no user input to validate), and pydantic's
        # validation per object was a measurable share of the GIL time of a cold ingest (py-spy --gil)
        entry = ManifestEntry.model_construct(uri=full_uri, key=key, etag=etag, sha256=sha, size=size, label=label,
                                              width=info.width, height=info.height, mode=info.mode)
        return _Outcome(key, record, entry, None, downloaded)

    unsafe = check_key(key)
    if unsafe:
        return quarantined(unsafe, None, 0)
    if previous and previous["etag"] == etag and previous["size"] == size:
        sha = previous["sha256"]
        if previous["rules"] == rules_hash:
            if previous["reason"] is None and cache.object_path(sha).is_file():
                info = ImageInfo(previous["format"], previous["mode"], previous["width"], previous["height"])
                return admitted(sha, info, 0)
            if previous["reason"] is not None and (sha is None or cache.quarantine_path(sha).is_file()):
                return quarantined(previous["reason"], sha, 0)
        else:  # rules changed: re-judge the local copy instead of downloading again
            local = cache.object_path(sha) if sha else None
            local = local if local and local.is_file() else (cache.quarantine_path(sha) if sha else None)
            if local is not None and local.is_file():
                return _judge(local.read_bytes(), sha, rules, cache, admitted, quarantined, 0, stored_at=local)
    if size > rules.max_bytes:
        return quarantined(f"too large: {size} bytes > max_bytes {rules.max_bytes} (not downloaded)", None, 0)
    try:
        data = client.get_object(Bucket=uri.bucket, Key=key)["Body"].read()
    except Exception as exc:  # botocore already retried with backoff; surface the object that failed
        raise StorageError(f"download of {full_uri} failed after retries: {exc}") from exc
    return _judge(data, sha256_bytes(data), rules, cache, admitted, quarantined, len(data))


def _judge(data: bytes, sha: str, rules: ImageRules, cache: ObjectCache, admitted: Any, quarantined: Any,
           downloaded: int, stored_at: Path | None = None) -> _Outcome:
    """Validate bytes and file them in the cache or in quarantine (``stored_at``: where they already lie, if local)."""
    verdict = validate_image(data, rules)
    rejected = isinstance(verdict, str)
    if stored_at != (cache.quarantine_path(sha) if rejected else cache.object_path(sha)):
        cache.put(sha, data, quarantined=rejected)  # a re-judged copy keeps its place when the verdict is unchanged
    if rejected:
        return quarantined(verdict, sha, downloaded)
    return admitted(sha, verdict, downloaded)


def ingest(
    sources: list[str],
    client: Any,
    cache_root: Path,
    rules: ImageRules,
    *,
    min_valid_count: int = 1,
    min_valid_fraction: float = 0.0,
    max_workers: int = 16,
    on_total: Callable[[int], None] | None = None,
    on_progress: Progress | None = None,
    artifacts: ArtifactRoot | None = None,
) -> IngestReport:
    """Ingest every object under ``sources`` into ``cache_root``; return the report (manifest saved alongside).

    With ``artifacts``, the manifest and the report are published to the artifact root too (any worker reads them).

    Raises IngestError (after saving the report) when valid images fall below the configured minimum.
    """
    started = time.perf_counter()
    cache = ObjectCache(cache_root)
    rules_hash = rules.rules_hash()
    entries: list[ManifestEntry] = []
    quarantine: list[QuarantineEntry] = []
    downloaded = reused = bytes_downloaded = 0
    for source in sources:
        uri = S3Uri.parse(source)
        try:
            labels = read_labels(client, uri)
        except client.exceptions.NoSuchBucket as exc:  # chained: the retry policy sees a 404, not an outage
            raise StorageError(f"bucket {uri.bucket!r} of {source} does not exist") from exc
        index = cache.load_index(source)
        new_index: dict[str, dict[str, Any]] = {}

        def work(obj: dict[str, Any], uri: S3Uri = uri, labels: dict[str, str] = labels, index: dict = index) -> _Outcome:
            outcome = _process_object(obj, uri, client, cache, rules, rules_hash, index.get(obj["Key"]), labels)
            if on_progress:
                on_progress(1)
            return outcome

        with ThreadPoolExecutor(max_workers=max_workers) as pool:
            # Each object is submitted as its listing page arrives: downloads of page 1 overlap the listing of
            # page 2.. (a bare "list everything, then download" waits for the whole listing first).
            futures = [pool.submit(work, obj) for obj in list_objects(client, uri)
                       if obj["Key"] != uri.folder + LABELS_MANIFEST]
            if on_total:
                on_total(len(futures))
            for future in futures:
                outcome = future.result()
                new_index[outcome.key] = outcome.record
                if outcome.downloaded_bytes:
                    downloaded += 1
                    bytes_downloaded += outcome.downloaded_bytes
                else:
                    reused += 1
                if outcome.entry:
                    entries.append(outcome.entry)
                if outcome.quarantine:
                    quarantine.append(outcome.quarantine)
        cache.save_index(source, new_index)

    manifest = SnapshotManifest(sources=list(sources), entries=sorted(entries, key=lambda e: e.uri))
    manifest_path = manifest.save(cache_root.parent / "manifests")
    total = len(entries) + len(quarantine)
    report = IngestReport(
        dataset_version=manifest.dataset_version,
        sources=list(sources),
        total=total,
        valid=len(entries),
        quarantined=sorted(quarantine, key=lambda q: q.uri),
        downloaded=downloaded,
        reused=reused,
        bytes_downloaded=bytes_downloaded,
        seconds=round(time.perf_counter() - started, 3),
        manifest_path=str(manifest_path),
    )
    report_path = cache_root.parent / "reports" / f"ingest-{report.dataset_version}.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(report.model_dump_json(indent=1))
    if artifacts is not None:  # published before the minimum check: a failed ingest's report is kept as well
        from canvascraft.ingest.snapshots import publish_snapshot

        publish_snapshot(manifest, report, artifacts)
    check_minimums(report, min_valid_count, min_valid_fraction, report_path)
    return report


def check_minimums(report: IngestReport, min_count: int, min_fraction: float, report_path: Path) -> None:
    """Fail when valid images are below ``data.min_valid_count`` or ``data.min_valid_fraction``."""
    fraction = report.valid / report.total if report.total else 0.0
    if report.valid < min_count or fraction < min_fraction:
        reasons = sorted({q.reason.split(":")[0] for q in report.quarantined})
        raise IngestError(
            f"ingest of {', '.join(report.sources)}: {report.valid} valid of {report.total} objects "
            f"({fraction:.0%}); the spec requires data.min_valid_count >= {min_count} and "
            f"data.min_valid_fraction >= {min_fraction:.0%}. {len(report.quarantined)} quarantined "
            f"(reasons: {', '.join(reasons) or 'none'}); full report: {report_path}"
        )
