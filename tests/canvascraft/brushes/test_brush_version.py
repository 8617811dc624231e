"""A brush's code version is part of the stack key: bumping it invalidates that brush's pieces, and only theirs."""

from __future__ import annotations

import pytest

from canvascraft.brushes import BrushStack
from canvascraft.brushes.base import Brush
from canvascraft.brushes.watercolor import WatercolorBrush
from canvascraft.errors import CanvasCraftError
from canvascraft.pieces import piece_key
from canvascraft.preprocess import stack_key

BLURRED = [{"name": "resize", "params": {"size": 16}}, {"name": "watercolor", "params": {"radius": 1}}]
PLAIN = [{"name": "resize", "params": {"size": 16}}, {"name": "normalize"}]


def test_keys_of_brushes_never_bumped_are_the_keys_written_before_versions() -> None:
    # computed by the stack key before brushes had a version: existing pieces and shard sets stay reusable
    assert stack_key(BrushStack.from_spec(BLURRED), 0) == "cb64a41f59efaca9"
    assert stack_key(BrushStack.from_spec(PLAIN), 0) == "6d5fb8ec8e1ffdf7"
    assert all("version" not in entry for entry in BrushStack.from_spec(BLURRED).config())


def test_bumping_a_brush_version_changes_its_stacks_keys_and_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    before = {name: stack_key(BrushStack.from_spec(spec), 0) for name, spec in (("blurred", BLURRED), ("plain", PLAIN))}
    monkeypatch.setattr(WatercolorBrush, "version", 2)  # what a fix to the watercolor brush's code does
    blurred = BrushStack.from_spec(BLURRED)
    assert blurred.config()[1] == {"name": "watercolor", "params": {"radius": 1.0}, "version": 2}
    bumped = stack_key(blurred, 0)
    assert bumped != before["blurred"]
    assert piece_key(bumped, ["a" * 64]) != piece_key(before["blurred"], ["a" * 64])
    assert stack_key(BrushStack.from_spec(PLAIN), 0) == before["plain"]  # a stack without it keeps its pieces
    monkeypatch.setattr(WatercolorBrush, "version", 3)
    assert stack_key(BrushStack.from_spec(BLURRED), 0) not in {before["blurred"], bumped}


@pytest.mark.parametrize("version", [0, -1, 1.5, "2", True])
def test_a_brush_class_with_an_invalid_version_is_refused(version: object) -> None:
    with pytest.raises(CanvasCraftError, match=r"brush class .*Odd: version must be an int >= 1, got"):
        type("Odd", (Brush,), {"__annotations__": {}, "version": version, "__module__": __name__})
