"""The dataset snapshot manifest; its content hash is the dataset version used for lineage and caching."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from canvascraft.files import atomic_write_text
from canvascraft.hashing import stable_hash


class ManifestEntry(BaseModel):
    """One valid image of a snapshot."""

    model_config = ConfigDict(frozen=True)

    uri: str = Field(description="s3://bucket/key the image came from.")
    key: str
    etag: str
    sha256: str = Field(description="Content hash; also the Feast entity key image_id.")
    size: int
    label: str | None = None
    width: int
    height: int
    mode: str


class QuarantineEntry(BaseModel):
    """An object that was not admitted, with the reason; its bytes are kept under the quarantine folder."""

    model_config = ConfigDict(frozen=True)

    uri: str
    key: str
    reason: str
    size: int
    sha256: str | None = None


class SnapshotManifest(BaseModel):
    """Every valid image of one ingest, sorted by URI."""

    sources: list[str]
    entries: list[ManifestEntry]

    @property
    def dataset_version(self) -> str:
        """Hash of (uri, sha256, size, label) of every entry.

        ETags are recorded but not hashed: a multipart upload of the same bytes has a different ETag, and the
        dataset version must only change when the data does.
        """
        return stable_hash([[e.uri, e.sha256, e.size, e.label] for e in self.entries])

    def save(self, folder: Path) -> Path:
        """Write ``<folder>/<dataset_version>.json`` atomically and return its path."""
        return atomic_write_text(folder / f"{self.dataset_version}.json", self.model_dump_json(indent=1))

    @classmethod
    def load(cls, path: str | Path) -> SnapshotManifest:
        """Read a manifest written by ``save``."""
        return cls.model_validate(json.loads(Path(path).read_text()))


class IngestReport(BaseModel):
    """What one ingest did: counts, reuse, quarantine with reasons, and where the manifest is."""

    dataset_version: str
    sources: list[str]
    total: int
    valid: int
    quarantined: list[QuarantineEntry]
    downloaded: int
    reused: int
    bytes_downloaded: int
    seconds: float
    manifest_path: str

    def summary(self) -> dict[str, object]:
        """The report as the JSON the CLI prints (quarantine as key/reason pairs)."""
        data = self.model_dump(mode="json")
        data["quarantined"] = [{"key": q.key, "uri": q.uri, "reason": q.reason} for q in self.quarantined]
        return data
