"""S3 access through boto3: URI parsing, a configured client and paginated listing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.utils import parse_timestamp

from canvascraft.errors import StorageError
from canvascraft.settings import Settings


@dataclass(frozen=True)
class S3Uri:
    """An ``s3://bucket/prefix`` location."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        """Parse ``s3://bucket[/prefix]``; the prefix keeps a trailing slash when it names a folder."""
        if not uri.startswith("s3://") or len(uri) <= 5:
            raise StorageError(f"{uri!r} is not an S3 URI; expected s3://BUCKET[/PREFIX]")
        bucket, _, prefix = uri[5:].partition("/")
        if not bucket:
            raise StorageError(f"{uri!r} has no bucket; expected s3://BUCKET[/PREFIX]")
        return cls(bucket, prefix)

    @property
    def folder(self) -> str:
        """The prefix as a folder (``''`` or ending in ``/``)."""
        return self.prefix if not self.prefix or self.prefix.endswith("/") else self.prefix + "/"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def fast_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser with ISO 8601 parsed by the stdlib first (same timezone-aware values).

    Every ListObjectsV2 row carries a LastModified; botocore parses it with dateutil's generic parser (~100 us each
    here), which was ~40% of the GIL time of listing 1,797 keys (py-spy --gil, bench/ingest.py).
    ``datetime.fromisoformat`` takes S3's ``2026-12-01T09:04:33.000Z`` form in ~0.1 us.
    """
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    return parse_timestamp(value)


def make_s3_client(settings: Settings) -> Any:
    """A boto3 S3 client: endpoint and keys from settings/embedded stack, standard retries with backoff."""
    config = Config(
        retries={"max_attempts": settings.s3_max_attempts, "mode": "standard"},
        max_pool_connections=max(10, settings.s3_max_concurrency),
        s3={"addressing_style": "path"} if settings.resolved_s3_endpoint_url else {},
    )
    core = botocore.session.get_session()  # one per client, so the parser default below stays with our clients
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=fast_timestamp)
    session = boto3.session.Session(botocore_session=core)
    return session.client(
        "s3",
        endpoint_url=settings.resolved_s3_endpoint_url,
        region_name=settings.s3_region,
        config=config,
        **settings.s3_credentials(),
    )


def list_objects(client: Any, uri: S3Uri) -> Iterator[dict[str, Any]]:
    """Every object under a prefix (paginated), folder-marker keys skipped."""
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=uri.bucket, Prefix=uri.folder):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith("/"):
                continue
            yield obj


def ensure_bucket(client: Any, bucket: str) -> None:
    """Create a bucket if it does not exist (embedded S3 and MinIO; on AWS create buckets with IaC)."""
    try:
        client.head_bucket(Bucket=bucket)
    except client.exceptions.ClientError:
        client.create_bucket(Bucket=bucket)
