"""Image validation from many threads at once (ingest's thread pool): verdicts must not depend on the schedule."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from canvascraft.ingest.validation import ImageInfo, ImageRules, validate_image
from tests.conftest import png_bytes

# Pillow warns (DecompressionBombWarning) above Image.MAX_IMAGE_PIXELS and raises above twice that. Lowered here so
# that a small, fully decodable image lies in the warning zone: 120x100 = 12,000 pixels.
PILLOW_LIMIT = 10_000
RULES = ImageRules(max_pixels=1_000_000)  # far above Pillow's limit: only Pillow's limit can reject the bomb


@pytest.fixture
def low_pillow_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pillow's documented process-wide limit, lowered for this test only."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", PILLOW_LIMIT)
    yield


@pytest.fixture
def fast_thread_switching() -> Iterator[None]:
    """Switch threads every microsecond (CPython's default is 5 ms) so that interleavings actually happen."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def samples() -> dict[str, bytes]:
    """A bomb-zone image, a good image and a non-image (which makes validation probe every Pillow format)."""
    return {
        "bomb": png_bytes((120, 100)),
        "good": png_bytes((16, 16), color=3),
        "text": b"just some text, no image here",
    }


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_warning_zone_verdict_does_not_depend_on_warning_filters(low_pillow_limit: None) -> None:
    bomb = samples()["bomb"]
    verdicts = []
    for action in ("ignore", "default", "error"):  # whatever a process (or pytest -W) configured
        with warnings.catch_warnings(record=True):  # single-threaded here; record: shown warnings are kept
            warnings.simplefilter(action)
            verdicts.append(validate_image(bomb, RULES))
    assert all(isinstance(v, str) and v.startswith("decompression bomb guard") for v in verdicts), verdicts
    assert validate_image(png_bytes((100, 100)), RULES) == ImageInfo("PNG", "L", 100, 100)  # at the limit: fine


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_concurrent_validation_gives_the_single_threaded_verdicts(
    low_pillow_limit: None, fast_thread_switching: None
) -> None:
    data = samples()
    expected = {name: validate_image(blob, RULES) for name, blob in data.items()}
    assert isinstance(expected["bomb"], str) and isinstance(expected["good"], ImageInfo)
    filters_before = list(warnings.filters)
    names = list(data) * 500

    with ThreadPoolExecutor(max_workers=8) as pool:
        verdicts = list(pool.map(lambda name: (name, validate_image(data[name], RULES)), names))

    wrong = [(name, verdict) for name, verdict in verdicts if verdict != expected[name]]
    assert not wrong, f"{len(wrong)} of {len(verdicts)} verdicts differ from the single-threaded ones: {wrong[:3]}"
    # validation must leave the process-wide warning filters as it found them
    assert warnings.filters == filters_before
