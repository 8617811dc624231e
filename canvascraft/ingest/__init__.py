"""Ingest from S3: validation, content-addressed cache, snapshot manifest."""

from canvascraft.ingest.ingest import LABELS_MANIFEST, ingest
from canvascraft.ingest.manifest import (
    IngestReport,
    ManifestEntry,
    QuarantineEntry,
    SnapshotManifest,
)
from canvascraft.ingest.validation import ImageRules, check_key, validate_image

__all__ = [
    "LABELS_MANIFEST",
    "ImageRules",
    "IngestReport",
    "ManifestEntry",
    "QuarantineEntry",
    "SnapshotManifest",
    "check_key",
    "ingest",
    "validate_image",
]
