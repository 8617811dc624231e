"""One closed choice each for FID feature dims and resize mode: every consumer accepts exactly these and names the
field and the allowed values when given another."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from canvascraft.errors import SpecError
from canvascraft.evaluation import EvaluationInputError
from canvascraft.evaluation.score_records import (
    FEATURE_DIMS,
    RESIZE_MODES,
    FidScore,
    as_feature_dims,
    as_resize_mode,
)
from canvascraft.spec import EmbeddingsDriftSpec, EvaluatorSpec, load_spec

MINIMAL_SPEC = {"name": "t", "data": {"source": "s3://bucket/prefix"}}
SHA = "a" * 64


def test_the_choices() -> None:
    assert FEATURE_DIMS == (64, 192, 768, 2048)
    assert RESIZE_MODES == ("bilinear", "bicubic", "nearest")


@pytest.mark.parametrize("model", [EvaluatorSpec, EmbeddingsDriftSpec, FidScore], ids=lambda m: m.__name__)
def test_every_model_uses_the_same_choices(model: type[BaseModel]) -> None:
    assert get_args(model.model_fields["dims"].annotation) == FEATURE_DIMS
    assert get_args(model.model_fields["resize"].annotation) == RESIZE_MODES


@pytest.mark.parametrize(
    ("section", "field", "value", "allowed"),
    [
        ("evaluator", "dims", 100, "64, 192, 768 or 2048"),
        ("evaluator", "resize", "area", "'bilinear', 'bicubic' or 'nearest'"),
        ("drift", "dims", 1000, "64, 192, 768 or 2048"),
    ],
)
def test_spec_names_the_field_and_the_allowed_values(section: str, field: str, value: object, allowed: str) -> None:
    body = {field: value} if section == "evaluator" else {"embeddings": {field: value}}
    with pytest.raises(SpecError) as caught:
        load_spec({**MINIMAL_SPEC, section: body})
    # drift.embeddings is ``bool | EmbeddingsDriftSpec``: pydantic names the union branch in the path
    where = f"{section}.{field}:" if section == "evaluator" else f"drift.embeddings.EmbeddingsDriftSpec.{field}:"
    line = next(line for line in str(caught.value).splitlines() if where in line)
    assert allowed in line and repr(value) in line


def test_validators_return_the_choice_or_name_field_and_allowed_values() -> None:
    assert as_feature_dims(np.int64(192)) == 192 and type(as_feature_dims(np.int64(192))) is int
    assert as_resize_mode("nearest") == "nearest"
    for bad in (100, "64", True, None):
        with pytest.raises(EvaluationInputError, match=r"^evaluator\.dims: got .*; allowed: 64, 192, 768, 2048$"):
            as_feature_dims(bad, "evaluator.dims")
    with pytest.raises(EvaluationInputError, match=r"^resize: got 'area'; allowed: bilinear, bicubic, nearest$"):
        as_resize_mode("area")


def test_score_record_rejects_other_dims() -> None:
    fields = {"fid": 1.0, "n": 10, "weights_sha256": SHA, "resize": "bilinear"}
    assert FidScore(dims=768, **fields).dims == 768
    with pytest.raises(ValidationError, match=r"dims\n.*64, 192, 768 or 2048"):
        FidScore(dims=100, **fields)


def test_cli_rejects_other_dims_and_resize_and_lists_them_in_help(tmp_path) -> None:
    from cli.main import app

    runner = CliRunner()
    bad_dims = runner.invoke(app, ["fid", str(tmp_path), str(tmp_path), "--dims", "100"])
    assert bad_dims.exit_code == 1 and "--dims: got 100; allowed: 64, 192, 768, 2048" in bad_dims.output
    bad_resize = runner.invoke(app, ["fid", str(tmp_path), str(tmp_path), "--resize", "area"])
    assert (
        bad_resize.exit_code == 1 and "--resize: got 'area'; allowed: bilinear, bicubic, nearest" in bad_resize.output
    )
    help_text = " ".join(runner.invoke(app, ["fid", "--help"], terminal_width=200).output.split())
    assert all(str(d) in help_text for d in FEATURE_DIMS) and all(m in help_text for m in RESIZE_MODES)
