"""Object validation rules, pure (no S3)."""

from __future__ import annotations

import struct
import zlib

import pytest

from canvascraft.ingest.validation import ImageInfo, ImageRules, check_key, validate_image
from tests.conftest import png_bytes, truncated_png

RULES = ImageRules()


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims a huge size but carries almost no data (a decompression-bomb shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )


def test_valid_png() -> None:
    info = validate_image(png_bytes((20, 10)), RULES)
    assert info == ImageInfo(format="PNG", mode="L", width=20, height=10)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"just some text", "not a decodable image"),
        (truncated_png(), "corrupt image data"),
        (png_bytes((2, 2)), "too small"),
        (png_bytes(fmt="GIF"), "format GIF not allowed; allowed formats: PNG, JPEG, WEBP"),
        (png_bytes(mode="CMYK", color=(0, 0, 0, 0), fmt="JPEG"), "mode CMYK not allowed"),
        (png_header_claiming(50_000, 50_000), "decompression bomb guard"),
    ],
    ids=["text", "truncated", "too-small", "gif", "cmyk", "bomb"],
)
def test_invalid_objects_get_a_reason(data: bytes, reason: str) -> None:
    verdict = validate_image(data, RULES)
    assert isinstance(verdict, str) and reason in verdict


def test_max_bytes() -> None:
    verdict = validate_image(png_bytes((64, 64)), ImageRules(max_bytes=10))
    assert isinstance(verdict, str) and verdict.startswith("too large")


def test_max_pixels_is_configurable() -> None:
    assert isinstance(validate_image(png_bytes((100, 100)), ImageRules(max_pixels=99 * 99)), str)
    assert isinstance(validate_image(png_bytes((100, 100)), ImageRules(max_pixels=100 * 100)), ImageInfo)


@pytest.mark.parametrize(
    "key", ["a/../../etc/passwd", "/abs/x.png", "a/./b.png", "a\\b.png", "bad\x00name.png", "x\ny.png"]
)
def test_unsafe_keys(key: str) -> None:
    assert check_key(key) is not None


@pytest.mark.parametrize("key", ["digits/3/00001.png", "a b/c-d_e.PNG", "ünïcode/ok.png"])
def test_safe_keys(key: str) -> None:
    assert check_key(key) is None


def test_rules_hash_changes_with_rules() -> None:
    assert ImageRules().rules_hash() == ImageRules().rules_hash() != ImageRules(min_side=8).rules_hash()
