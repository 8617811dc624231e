"""Object validation before an image enters the cache: key safety, size, format, mode, decompression bombs.

Thread-safe: ingest validates from a thread pool, so nothing here touches process-wide state. In particular no
``warnings.catch_warnings()``: it swaps the global ``warnings.filters`` list and is documented as not thread-safe
(Python ``warnings`` docs), so one thread's exit restored another's filters and a DecompressionBombWarning was
ignored or leaked. Pillow's bomb limit is checked by size instead (``_bomb_reason``), whatever the filters say.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from canvascraft.hashing import stable_hash
from canvascraft.spec import DataSpec


@dataclass(frozen=True)
class ImageRules:
    """What ingest accepts; built from the spec's ``data`` section."""

    allowed_formats: tuple[str, ...] = ("PNG", "JPEG", "WEBP")
    allowed_modes: tuple[str, ...] = ("L", "LA", "P", "RGB", "RGBA")
    max_pixels: int = 4096 * 4096
    max_bytes: int = 50 * 1024 * 1024
    min_side: int = 4

    @classmethod
    def from_spec(cls, data: DataSpec) -> ImageRules:
        """Rules from a validated ``DataSpec``."""
        return cls(
            allowed_formats=tuple(data.allowed_formats),
            allowed_modes=tuple(data.allowed_modes),
            max_pixels=data.max_pixels,
            max_bytes=data.max_bytes,
            min_side=data.min_side,
        )

    def rules_hash(self) -> str:
        """Hash of the rules: cached verdicts are reused only while the rules are unchanged."""
        return stable_hash(self.__dict__)


@dataclass(frozen=True)
class ImageInfo:
    """What a valid image looks like."""

    format: str
    mode: str
    width: int
    height: int


def check_key(key: str) -> str | None:
    """Return why an object key is unsafe to ingest, or None.

    Keys never become local paths (the cache is content-addressed), but a key that tries to climb out of its
    prefix or hides control characters is a sign of a hostile or broken producer, so it is quarantined.
    """
    if not key or key.startswith("/") or "\\" in key:
        return f"unsafe key {key!r}: absolute or backslash path"
    if any(part in ("..", ".") for part in key.split("/")):
        return f"unsafe key {key!r}: contains a '.' or '..' path segment"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        return f"unsafe key {key!r}: contains control characters"
    return None


def validate_image(data: bytes, rules: ImageRules) -> ImageInfo | str:
    """Decode-check an object; return its ImageInfo or the reason it is rejected."""
    if len(data) > rules.max_bytes:
        return f"too large: {len(data)} bytes > max_bytes {rules.max_bytes}"
    try:
        # Only the allowed decoders are tried (Pillow otherwise probes every registered format in Python,
        # per object); a rejected file is probed once more below to name its real format.
        with Image.open(io.BytesIO(data), formats=list(rules.allowed_formats)) as image:
            # Dimensions come from the header: check them before decoding a single pixel (bomb guard).
            width, height = image.size
            reason = _bomb_reason(width, height, rules.max_pixels)
            if reason is not None:
                return reason
            if image.format not in rules.allowed_formats:
                return f"format {image.format} not allowed; allowed formats: {', '.join(rules.allowed_formats)}"
            if image.mode not in rules.allowed_modes:
                return f"mode {image.mode} not allowed; allowed modes: {', '.join(rules.allowed_modes)}"
            if min(width, height) < rules.min_side:
                return f"too small: {width}x{height} < min_side {rules.min_side}"
            image.load()  # full decode: catches truncated and corrupt data
            return ImageInfo(format=image.format, mode=image.mode, width=width, height=height)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Error: above twice Pillow's limit, raised whatever the filters. Warning: only where the process itself
        # turned it into an error (python -W error, pytest -W error); the verdict is "rejected" either way.
        return f"decompression bomb guard: {exc}"
    except UnidentifiedImageError:
        found = _probe_format(data)
        if found is not None:
            return f"format {found} not allowed; allowed formats: {', '.join(rules.allowed_formats)}"
        return "not a decodable image"
    except (OSError, SyntaxError, ValueError) as exc:
        return f"corrupt image data: {exc}"


def _bomb_reason(width: int, height: int, max_pixels: int) -> str | None:
    """Why a header's dimensions are a decompression-bomb risk (``data.max_pixels`` or Pillow's limit), or None."""
    pixels = width * height
    if pixels > max_pixels:
        return f"decompression bomb guard: {width}x{height} = {pixels} pixels > max_pixels {max_pixels}"
    # Pillow's own limit, read per call (a process may change it): above it Image.open only *warns*
    # (DecompressionBombWarning, Pillow docs "Image.open"), so whether the image was rejected used to hang on the
    # global warning filters. Deciding by size gives every thread the same verdict.
    pillow_limit = Image.MAX_IMAGE_PIXELS
    if pillow_limit is not None and pixels > pillow_limit:
        return (
            f"decompression bomb guard: {width}x{height} = {pixels} pixels > Pillow's Image.MAX_IMAGE_PIXELS "
            f"{pillow_limit} (a data.max_pixels above it does not raise it)"
        )
    return None


def _probe_format(data: bytes) -> str | None:
    """The format any Pillow decoder recognises in ``data`` (header only), or None."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format
    except Exception:  # noqa: BLE001 - anything Pillow cannot identify is "not a decodable image"
        return None
