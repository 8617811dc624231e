"""Image decoding for the stages: ``torchvision.io`` (C++, releases the GIL) where it gives Pillow's exact pixels.

Every path returns what Pillow's ``Image.open(path).convert("RGB")`` gives, as float32 CHW in [0, 1]: the tensors
are identical whichever decoder ran (tests/canvascraft/test_decoding.py checks each format and mode ingest can
admit). ``torchvision.io.decode_image(..., mode=RGB)`` matches Pillow for 8-bit (and 1/2/4-bit) PNG in every
colour type, palette and tRNS included, baseline/progressive JPEG in L, RGB and CMYK, and WEBP (lossy, lossless,
alpha). Pillow stays the decoder for what torchvision decodes differently or not at all, found by running both:

* 16-bit PNG: torchvision returns uint16 (65535 scale) where Pillow's RGB conversion keeps the high byte;
* GIF: torchvision returns every frame, Pillow (and so the stages) the first;
* BMP, TIFF: not decoded by ``torchvision.io``.

torchvision 0.29 deprecates its image decoders in favour of TorchCodec (a DeprecationWarning on each call). TorchCodec
is not a dependency yet; ``decode_rgb`` is the one place to switch, and the equality tests are the check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as F

from canvascraft.errors import CanvasCraftError

Decoder = Literal["torchvision", "pillow"]

_PNG = b"\x89PNG\r\n\x1a\n"
_PNG_BIT_DEPTH = 24  # byte offset of IHDR's bit depth: 8 signature + 4 length + 4 type + 4 width + 4 height


def decoder_for(head: bytes) -> Decoder:
    """Which decoder gives Pillow's pixels for a file starting with ``head`` (its first 32 bytes or more)."""
    if head.startswith(_PNG):
        return "torchvision" if len(head) > _PNG_BIT_DEPTH and head[_PNG_BIT_DEPTH] <= 8 else "pillow"
    if head.startswith(b"\xff\xd8\xff") or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "torchvision"
    return "pillow"


def load_image_pil(path: Path) -> torch.Tensor:
    """Decode an image file with Pillow to a float32 RGB CHW tensor in [0, 1] (the reference decoder)."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")  # palette, LA and RGBA are flattened explicitly to RGB
    return F.to_dtype(F.to_image(rgb), torch.float32, scale=True)


def decode_rgb(path: Path) -> torch.Tensor:
    """Decode an image file to a float32 RGB CHW tensor in [0, 1], equal to ``load_image_pil``'s, faster."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CanvasCraftError(f"image {path.name} cannot be read from the object cache: {exc}") from exc
    try:
        if decoder_for(data[:32]) == "pillow":
            return load_image_pil(path)
        # decode_image reads a uint8 tensor; frombuffer shares the bytes (a bytearray, so the tensor is writable)
        pixels = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except (OSError, RuntimeError, ValueError, SyntaxError) as exc:
        raise CanvasCraftError(
            f"image {path.name} cannot be decoded: {exc}; ingest admitted it, so the cached copy "
            "is damaged: delete it and rerun the flow (it is fetched again)"
        ) from exc
    return F.to_dtype(pixels, torch.float32, scale=True)
