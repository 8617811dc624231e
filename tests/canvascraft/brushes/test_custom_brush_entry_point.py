"""A third-party brush registered through the ``canvascraft.brushes`` entry-point group is found by the factory.

The test installs a real (tiny) distribution by writing its package and ``.dist-info`` onto ``sys.path``, which is
what pip does; ``importlib.metadata`` then discovers its entry point exactly as for a pip-installed package.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import torch

from canvascraft.brushes import BRUSHES, BrushStack
from canvascraft.spec import load_spec

PACKAGE = '''
import torch
from pydantic import Field
from canvascraft.brushes import Brush


class _Invert(torch.nn.Module):
    def forward(self, image):
        return 1.0 - image


class InvertBrush(Brush):
    """Invert intensities (a test plug-in)."""

    name = "invert"
    strength: float = Field(default=1.0, ge=0.0, le=1.0)

    def transform(self):
        return _Invert()
'''


def install_fake_distribution(site: Path) -> None:
    (site / "cc_test_brushes").mkdir(parents=True)
    (site / "cc_test_brushes" / "__init__.py").write_text(textwrap.dedent(PACKAGE))
    dist = site / "cc_test_brushes-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cc-test-brushes\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[canvascraft.brushes]\ninvert = cc_test_brushes:InvertBrush\n")


def test_entry_point_brush_is_usable_from_a_spec(tmp_path: Path) -> None:
    install_fake_distribution(tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        BRUSHES.load_entry_points(force=True)
        assert "invert" in BRUSHES.names()
        spec = load_spec(
            {
                "name": "t",
                "data": {"source": "s3://bucket/p"},
                "brushes": [{"name": "invert", "params": {"strength": 1.0}}],
            }
        )
        stack = BrushStack.from_spec(spec.brushes)
        out = stack(torch.zeros(1, 2, 2), seed=0, key="k")
        assert torch.equal(out, torch.ones(1, 2, 2))
        bad = {
            "name": "t",
            "data": {"source": "s3://bucket/p"},
            "brushes": [{"name": "invert", "params": {"strength": 3}}],
        }
        try:
            load_spec(bad)
        except Exception as exc:  # the plug-in's own ranges apply
            assert "brushes[0].params.strength" in str(exc)
        else:
            raise AssertionError("out-of-range plug-in param was accepted")
    finally:
        sys.path.remove(str(tmp_path))
        BRUSHES._items.pop("invert", None)
        sys.modules.pop("cc_test_brushes", None)
