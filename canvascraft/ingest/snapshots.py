"""Snapshots in the artifact root: manifests and ingest reports any worker can read, and the objects they list.

A manifest is keyed by its dataset version (the hash of its entries), so the key names the content. The images a
manifest lists stay where they came from (the source bucket): a worker whose object cache lacks one fetches it
from its ``uri`` and checks its sha256, so a local cache is never required to be complete.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from canvascraft.artifact_root import ArtifactRoot
from canvascraft.errors import IngestError, StorageError
from canvascraft.hashing import sha256_bytes
from canvascraft.ingest.cache import ObjectCache
from canvascraft.ingest.manifest import IngestReport, ManifestEntry, SnapshotManifest
from canvascraft.storage import S3Uri


def manifest_key(dataset_version: str) -> str:
    """Artifact-root key of a snapshot manifest."""
    return f"manifests/{dataset_version}.json"


def report_key(dataset_version: str) -> str:
    """Artifact-root key of the ingest report of a snapshot."""
    return f"ingest-reports/{dataset_version}.json"


def publish_snapshot(manifest: SnapshotManifest, report: IngestReport, root: ArtifactRoot) -> None:
    """Store the manifest and its ingest report (quarantine reasons included) in the artifact root."""
    root.put_bytes(manifest_key(manifest.dataset_version), manifest.model_dump_json(indent=1).encode())
    root.put_bytes(report_key(report.dataset_version), report.model_dump_json(indent=1).encode())


def load_manifest(dataset_version: str, root: ArtifactRoot) -> SnapshotManifest:
    """The manifest of a dataset version, from the local copy or the artifact root."""
    data = root.get_bytes(manifest_key(dataset_version))
    if data is None:
        raise IngestError(
            f"snapshot manifest of dataset version {dataset_version} is not in the artifact root "
            f"{root.url} ({manifest_key(dataset_version)}); run the train flow's ingest for it"
        )
    return SnapshotManifest.model_validate_json(data)


def fetch_objects(
    entries: Iterable[ManifestEntry], cache: ObjectCache, client: Any, max_workers: int = 8, *, verify: bool = False
) -> dict[str, Path]:
    """Local paths of the entries' images; objects missing from the cache are fetched and their sha256 checked.

    A cached copy is used only when it has the manifest's size (and, with ``verify``, its sha256); any other copy
    is fetched again and replaced atomically. The GET is unconditional: the sha256 check is what pins the content
    (an ``IfMatch`` on the manifest's ETag would refuse a multipart re-upload of the very same bytes).
    """
    entries = list(entries)

    def ensure(entry: ManifestEntry) -> Path:
        path = cache.object_path(entry.sha256)
        if cache.defect(entry.sha256, entry.size, verify=verify) is None:
            return path
        location = S3Uri.parse(entry.uri)
        try:
            data = client.get_object(Bucket=location.bucket, Key=location.prefix)["Body"].read()
        except Exception as exc:  # botocore already retried with backoff; name the object (retry policy sees the cause)
            raise StorageError(
                f"fetch of {entry.uri} (sha256 {entry.sha256[:16]}) for this worker's object cache failed: {exc}"
            ) from exc
        if sha256_bytes(data) != entry.sha256:
            raise IngestError(
                f"{entry.uri} changed since its snapshot (sha256 differs from the manifest's "
                f"{entry.sha256[:16]}); the snapshot's dataset version no longer describes the source"
            )
        return cache.put(entry.sha256, data)

    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        return {entry.sha256: path for entry, path in zip(entries, pool.map(ensure, entries), strict=True)}
