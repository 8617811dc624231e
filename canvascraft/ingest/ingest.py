"""Ingest: list and download ``s3://`` prefixes into the content-addressed cache, validating every object.

Incremental: an object whose ETag and size match the previous ingest (under the same validation rules) is not
downloaded again, provided its cached copy has the listed size (and, re-judged under new rules or with
``verify``, its sha256). Downloads are conditional on the listed ETag (``If-Match``), and the ETag recorded is the
one of the bytes received. Invalid objects are quarantined with a reason; nothing is dropped silently and nothing
is ever deleted from the source. Listing and labels go through the boto3 client; object bytes through an
``ObjectReader`` (canvascraft/object_reader.py: obstore by default, ``CANVASCRAFT_INGEST_ENGINE``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from canvascraft.artifact_root import ArtifactRoot
from canvascraft.errors import IngestError, StorageError
from canvascraft.files import atomic_write_text
from canvascraft.hashing import sha256_bytes
from canvascraft.ingest.cache import ObjectCache
from canvascraft.ingest.labels import LABELS_MANIFEST, quarantine_entries, read_labels
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
from canvascraft.object_reader import ObjectReader, SettingsReader
from canvascraft.storage import S3Uri, list_objects

CHANGE_ATTEMPTS = 3  # GETs of one object that may meet a newer version than the one just listed/HEADed

Progress = Callable[[int], None]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Outcome:
    """What happened to one object."""

    key: str
    record: dict[str, Any]
    entry: ManifestEntry | None
    quarantine: QuarantineEntry | None
    downloaded_bytes: int


def _label_for(relative_key: str, labels: dict[str, str]) -> str | None:
    """Label from the labels manifest, else the first sub-folder under the prefix, else None."""
    if relative_key in labels:
        return labels[relative_key]
    head, sep, _ = relative_key.partition("/")
    return head if sep else None


def _process_object(
    obj: dict[str, Any],
    uri: S3Uri,
    reader: ObjectReader,
    cache: ObjectCache,
    rules: ImageRules,
    rules_hash: str,
    previous: dict[str, Any] | None,
    labels: dict[str, str],
    verify: bool = False,
) -> _Outcome:
    """Reuse the cached verdict or download, hash, validate and file one object."""
    key, listed_etag, listed_size = obj["Key"], obj["ETag"].strip('"'), int(obj["Size"])
    full_uri = f"s3://{uri.bucket}/{key}"
    relative = key[len(uri.folder) :]
    label = _label_for(relative, labels)

    # etag/size default to the listing's; a download passes those of the bytes it received
    def quarantined(
        reason: str, sha: str | None, downloaded: int, *, etag: str = listed_etag, size: int = listed_size
    ) -> _Outcome:
        record = {"etag": etag, "size": size, "sha256": sha, "rules": rules_hash, "reason": reason}
        return _Outcome(
            key, record, None, QuarantineEntry(uri=full_uri, key=key, reason=reason, size=size, sha256=sha), downloaded
        )

    def admitted(
        sha: str, info: ImageInfo, downloaded: int, *, etag: str = listed_etag, size: int = listed_size
    ) -> _Outcome:
        record = {
            "etag": etag,
            "size": size,
            "sha256": sha,
            "rules": rules_hash,
            "reason": None,
            "width": info.width,
            "height": info.height,
            "mode": info.mode,
            "format": info.format,
        }
        # model_construct: every field is built here from typed values (no user input to validate), and pydantic's
        # validation per object was a measurable share of the GIL time of a cold ingest (py-spy --gil)
        entry = ManifestEntry.model_construct(
            uri=full_uri,
            key=key,
            etag=etag,
            sha256=sha,
            size=size,
            label=label,
            width=info.width,
            height=info.height,
            mode=info.mode,
        )
        return _Outcome(key, record, entry, None, downloaded)

    unsafe = check_key(key)
    if unsafe:
        return quarantined(unsafe, None, 0)
    if previous and previous["etag"] == listed_etag and previous["size"] == listed_size:
        sha = previous["sha256"]
        if previous["rules"] == rules_hash:
            rejected = previous["reason"] is not None
            if sha is None and rejected:  # judged without a download (too large): nothing cached to check
                return quarantined(previous["reason"], sha, 0)
            if sha is not None and _cached_copy_is_intact(cache, full_uri, sha, listed_size, rejected, verify):
                if rejected:
                    return quarantined(previous["reason"], sha, 0)
                info = ImageInfo(previous["format"], previous["mode"], previous["width"], previous["height"])
                return admitted(sha, info, 0)
        elif sha:  # rules changed: re-judge the local copy instead of downloading again
            for local in (cache.object_path(sha), cache.quarantine_path(sha)):
                data = _read_if_intact(local, full_uri, sha, listed_size)
                if data is not None:
                    return _judge(data, sha, rules, cache, admitted, quarantined, 0, stored_at=local)
    if listed_size > rules.max_bytes:
        return quarantined(f"too large: {listed_size} bytes > max_bytes {rules.max_bytes} (not downloaded)", None, 0)
    fetched = _get_current_version(reader, uri.bucket, key, listed_etag)
    if fetched is None:
        # etag "" matches no listing: the next ingest tries this object again instead of reusing the verdict
        return quarantined(
            f"changed during download: a newer version appeared on each of {CHANGE_ATTEMPTS} "
            "attempts; run ingest again once writers to this key are done",
            None,
            0,
            etag="",
        )
    data, etag = fetched
    # the record pairs these bytes with the ETag of the response that carried them, never the listing's ETag
    size = len(data)
    return _judge(
        data,
        sha256_bytes(data),
        rules,
        cache,
        partial(admitted, etag=etag, size=size),
        partial(quarantined, etag=etag, size=size),
        size,
    )


def _cached_copy_is_intact(
    cache: ObjectCache, full_uri: str, sha: str, size: int, quarantined: bool, verify: bool
) -> bool:
    """Whether a cached copy may stand in for a download; a damaged one is logged (then fetched and replaced)."""
    defect = cache.defect(sha, size, quarantined=quarantined, verify=verify)
    if defect is not None and defect != "absent":
        log.warning("cached copy of %s (sha256 %s) is not intact (%s): fetching it again", full_uri, sha[:16], defect)
    return defect is None


def _read_if_intact(path: Path, full_uri: str, sha: str, size: int) -> bytes | None:
    """A cached copy's bytes when it has the recorded size and sha256 (it is read whole anyway), else None."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None
    if len(data) == size and sha256_bytes(data) == sha:
        return data
    log.warning(
        "cached copy %s of %s is not intact (%d bytes, expected %d; or sha256 differs): fetching it again",
        path,
        full_uri,
        len(data),
        size,
    )
    return None


def _get_current_version(reader: ObjectReader, bucket: str, key: str, etag: str) -> tuple[bytes, str] | None:
    """(bytes, the ETag they carry) of an object, GET only while its ETag is ``etag``; None if it keeps changing.

    ``If-Match``: S3 answers 412 PreconditionFailed when the object was replaced after the listing; the new version
    is HEADed and fetched under its own ETag (ingest snapshots what the source holds now; the manifest pins it by
    sha256). A server that ignores If-Match (rclone ``serve s3`` 1.75) returns the new bytes, so the ETag kept is
    the GET response's own, never the listing's: bytes and ETag always come from one response.
    """
    for _ in range(CHANGE_ATTEMPTS):
        fetched = reader.get(bucket, key, etag)  # StorageError naming the object once the reader's retries are spent
        if fetched is not None:
            return fetched
        try:
            etag = reader.head_etag(bucket, key)
        except StorageError as exc:
            raise StorageError(
                f"s3://{bucket}/{key} changed after it was listed (GET If-Match answered 412) and "
                f"its new version cannot be read: {exc}"
            ) from exc
    return None


def _judge(
    data: bytes,
    sha: str,
    rules: ImageRules,
    cache: ObjectCache,
    admitted: Any,
    quarantined: Any,
    downloaded: int,
    stored_at: Path | None = None,
) -> _Outcome:
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
    verify: bool = False,
    reader: ObjectReader | None = None,
) -> IngestReport:
    """Ingest every object under ``sources`` into ``cache_root``; return the report (manifest saved alongside).

    With ``artifacts``, the manifest and the report are published to the artifact root too (any worker reads them).
    With ``verify``, every reused cached copy is re-hashed (sha256) before it is trusted, not only size-checked.
    ``reader`` fetches object bytes; by default the one ``Settings.ingest_engine`` names, on ``client``'s S3.

    Raises IngestError (after saving the report) when valid images fall below the configured minimum.
    """
    started = time.perf_counter()
    chosen: ObjectReader = reader if reader is not None else SettingsReader(client)
    cache = ObjectCache(cache_root)
    rules_hash = rules.rules_hash()
    entries: list[ManifestEntry] = []
    quarantine: list[QuarantineEntry] = []
    label_rejects: list[QuarantineEntry] = []  # labels.csv rows not used: reported, not counted as objects
    downloaded = reused = bytes_downloaded = 0
    for source in sources:
        uri = S3Uri.parse(source)
        try:
            parsed_labels = read_labels(client, uri)
        except client.exceptions.NoSuchBucket as exc:  # chained: the retry policy sees a 404, not an outage
            raise StorageError(f"bucket {uri.bucket!r} of {source} does not exist") from exc
        labels = parsed_labels.labels
        label_rejects += quarantine_entries(uri, parsed_labels)
        index = cache.load_index(source)
        new_index: dict[str, dict[str, Any]] = {}

        def work(
            obj: dict[str, Any], uri: S3Uri = uri, labels: dict[str, str] = labels, index: dict = index
        ) -> _Outcome:
            outcome = _process_object(obj, uri, chosen, cache, rules, rules_hash, index.get(obj["Key"]), labels, verify)
            if on_progress:
                on_progress(1)
            return outcome

        with ThreadPoolExecutor(max_workers=max_workers) as pool:
            # Each object is submitted as its listing page arrives: downloads of page 1 overlap the listing of
            # page 2.. (a bare "list everything, then download" waits for the whole listing first).
            futures = [
                pool.submit(work, obj)
                for obj in list_objects(client, uri)
                if obj["Key"] != uri.folder + LABELS_MANIFEST
            ]
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
        quarantined=sorted(quarantine + label_rejects, key=lambda q: q.uri),
        downloaded=downloaded,
        reused=reused,
        bytes_downloaded=bytes_downloaded,
        seconds=round(time.perf_counter() - started, 3),
        manifest_path=str(manifest_path),
    )
    report_path = cache_root.parent / "reports" / f"ingest-{report.dataset_version}.json"
    atomic_write_text(report_path, report.model_dump_json(indent=1))  # two runs of one snapshot may write at once
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
