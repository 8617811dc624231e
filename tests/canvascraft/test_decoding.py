"""torchvision.io decoding gives exactly Pillow's pixels for every format and mode ingest can admit."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
import torch
from PIL import Image

from canvascraft.decoding import decode_rgb, decoder_for, load_image_pil
from canvascraft.errors import CanvasCraftError
from canvascraft.spec import DataSpec

FORMATS = get_args(get_args(DataSpec.model_fields["allowed_formats"].annotation)[0])
MODES = get_args(get_args(DataSpec.model_fields["allowed_modes"].annotation)[0])


def _photo(seed: int = 0) -> Image.Image:
    """Noise plus gradients: exercises both flat and busy regions of lossy codecs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:45, 0:61]
    smooth = np.stack([(xx * 4) % 256, (yy * 5) % 256, ((xx + yy) * 3) % 256], -1)
    noisy = (smooth + rng.integers(-40, 40, smooth.shape)).clip(0, 255)
    return Image.fromarray(noisy.astype(np.uint8))


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _in_mode(image: Image.Image, mode: str) -> Image.Image:
    if mode == "P":
        return image.convert("P", palette=Image.Palette.ADAPTIVE, colors=40)
    if mode == "I;16":
        return Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257)
    return image.convert(mode)


def _png(width: int, height: int, bit_depth: int, colour_type: int, rows: list[bytes]) -> bytes:
    """A PNG written chunk by chunk (Pillow cannot write 16-bit RGB)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + row for row in rows))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _cases() -> list[tuple[str, bytes]]:
    cases = []
    for fmt in FORMATS:
        for mode in MODES:
            try:
                data = _encode(_in_mode(_photo(), mode), fmt)
            except (OSError, ValueError, KeyError):
                continue  # Pillow cannot write this combination, so no source can hold it either
            cases.append((f"{fmt}-{mode}", data))
    rng = np.random.default_rng(1)
    rgb16 = rng.integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    cases.append(("PNG-16bit-RGB", _png(7, 5, 16, 2, [row.astype(">u2").tobytes() for row in rgb16])))
    gray2 = rng.integers(0, 4, (6, 8), dtype=np.uint8)
    cases.append(
        ("PNG-2bit-L", _png(8, 6, 2, 0, [int("".join(f"{v:02b}" for v in row), 2).to_bytes(2, "big") for row in gray2]))
    )
    photo = _photo(2)
    cases.append(
        ("PNG-P-tRNS", _encode(photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG", transparency=3))
    )
    cases.append(("JPEG-progressive", _encode(photo, "JPEG", progressive=True, quality=90)))
    cases.append(("JPEG-444", _encode(photo, "JPEG", subsampling=0, quality=95)))
    cases.append(("JPEG-CMYK", _encode(photo.convert("CMYK"), "JPEG")))
    rgba = Image.fromarray(rng.integers(0, 256, (20, 30, 4), dtype=np.uint8), "RGBA")
    cases.append(("WEBP-lossless-RGBA", _encode(rgba, "WEBP", lossless=True)))
    cases.append(("WEBP-lossy-RGBA", _encode(rgba, "WEBP", quality=80)))
    frames = [_in_mode(_photo(s), "P") for s in range(3)]
    cases.append(("GIF-animated", _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])))
    return cases


@pytest.mark.parametrize(("name", "data"), _cases(), ids=[name for name, _ in _cases()])
def test_decode_equals_pillow(name: str, data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "image"
    path.write_bytes(data)
    expected = load_image_pil(path)
    got = decode_rgb(path)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert torch.equal(got, expected), f"{name}: max difference {(got - expected).abs().max().item()}"


@pytest.mark.parametrize(
    ("name", "decoder"),
    [
        ("PNG-L", "torchvision"),
        ("PNG-P", "torchvision"),
        ("PNG-RGBA", "torchvision"),
        ("PNG-2bit-L", "torchvision"),
        ("JPEG-RGB", "torchvision"),
        ("JPEG-CMYK", "torchvision"),
        ("WEBP-RGB", "torchvision"),
        ("PNG-I;16", "pillow"),
        ("PNG-16bit-RGB", "pillow"),
        ("GIF-animated", "pillow"),
        ("BMP-RGB", "pillow"),
        ("TIFF-RGB", "pillow"),
    ],
)
def test_torchvision_decodes_what_it_decodes_like_pillow(name: str, decoder: str) -> None:
    """The fast path is really taken for the common formats (and only there: the pixels would differ)."""
    data = dict(_cases())[name]
    assert decoder_for(data[:32]) == decoder


def test_damaged_image_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "ab12"
    path.write_bytes(_encode(_photo(), "JPEG")[:40])
    with pytest.raises(CanvasCraftError, match="image ab12 cannot be decoded"):
        decode_rgb(path)
