"""What every spec section shares: the strict, immutable section base, registry components and s3:// URIs."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Bucket names follow S3's rules (3-63 lowercase letters, digits, dots, hyphens); the prefix is free.
S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")


class SpecSection(BaseModel):
    """Base of every spec section: immutable and strict about unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ComponentSpec(SpecSection):
    """A registry component by name with its parameters (validated by the component's own model)."""

    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


def require_s3_uri(uri: str) -> str:
    """``uri`` when it is an s3://bucket/prefix URI; else a ValueError (pydantic makes it a field error)."""
    if not S3_URI.match(uri):
        raise ValueError(f"{uri!r} is not an s3://bucket/prefix URI")
    return uri
