"""Spec parsing: example specs validate; bad specs fail naming the field path and the allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from canvascraft.errors import SpecError
from canvascraft.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = {"name": "t", "data": {"source": "s3://bucket/prefix"}}


@pytest.mark.parametrize("path", sorted((ROOT / "pipelines").glob("*.yaml")), ids=lambda p: p.name)
def test_example_specs_validate(path: Path) -> None:
    spec = load_spec(path)
    assert spec.name == path.stem


def with_(**changes: object) -> dict:
    spec = {**MINIMAL, "data": dict(MINIMAL["data"])}
    spec.update(changes)
    return spec


def error_of(spec: object) -> str:
    with pytest.raises(SpecError) as caught:
        load_spec(spec)  # type: ignore[arg-type]
    return str(caught.value)


def test_bad_literal_lists_allowed_values() -> None:
    message = error_of(with_(device="gpu"))
    assert "device" in message and "'auto', 'cpu' or 'cuda'" in message and "'gpu'" in message


def test_unknown_key_lists_allowed_keys() -> None:
    message = error_of(with_(data={"source": "s3://bucket/p", "sorce": "x"}))
    assert "data.sorce: unknown key" in message and "min_valid_count" in message


def test_unknown_top_level_key() -> None:
    message = error_of(with_(trainr={"name": "ddpm"}))
    assert "trainr: unknown key" in message and "trainer" in message


def test_out_of_range_names_field_and_bound() -> None:
    message = error_of(with_(data={"source": "s3://bucket/p", "min_valid_fraction": 1.5}))
    assert "data.min_valid_fraction" in message and "less than or equal to 1" in message


def test_brush_param_out_of_range_names_the_path() -> None:
    message = error_of(
        with_(brushes=[{"name": "resize", "params": {"size": 16}}, {"name": "watercolor", "params": {"radius": 12}}])
    )
    assert "brushes[1].params.radius" in message and "less than or equal to 10" in message


def test_unknown_brush_lists_registered_brushes() -> None:
    message = error_of(with_(brushes=[{"name": "oil_paint"}]))
    assert "brushes[0].name" in message and "'oil_paint'" in message and "watercolor" in message and "resize" in message


def test_unknown_brush_param_lists_allowed_params() -> None:
    message = error_of(with_(brushes=[{"name": "gaussian_noise", "params": {"ratio": 0.1}}]))
    assert "brushes[0].params.ratio: unknown key" in message and "noise_ratio" in message


def test_bad_source_uri() -> None:
    assert "data.source" in error_of(with_(data={"source": "/local/folder"}))


def test_missing_required_section() -> None:
    assert "data: Field required" in error_of({"name": "t"})


def test_yaml_syntax_error_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    assert "bad.yaml is not valid YAML" in error_of(bad)


def test_missing_file() -> None:
    assert "does not exist" in error_of("nope/missing.yaml")


def test_spec_hash_is_stable_and_content_sensitive() -> None:
    a, b = load_spec(with_(seed=1)), load_spec(with_(seed=1))
    assert a.spec_hash() == b.spec_hash() != load_spec(with_(seed=2)).spec_hash()


def test_spec_hash_ignores_where_alerts_go() -> None:
    base = load_spec(with_(seed=1))
    routed = load_spec({**with_(seed=1), "notifications": {"block": "slack-webhook/ml-oncall", "events": ["rollback"]}})
    assert routed.notifications.block == "slack-webhook/ml-oncall" and routed.spec_hash() == base.spec_hash()
