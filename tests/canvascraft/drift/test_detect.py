"""The drift decision on feature tables with known shifts (Evidently runs for real)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from canvascraft.drift import compare_features, dataset_drift
from canvascraft.errors import DriftError
from canvascraft.spec import DriftSpec, PipelineSpec, with_extra_sources


def table(n: int, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    """Four independent features; ``shift`` moves the named ones by that many standard deviations."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(0.0, 1.0, n) for name in ("brightness", "contrast", "sharpness", "entropy")})
    for name, amount in (shift or {}).items():
        frame[name] += amount
    frame.insert(0, "image_id", [f"{seed}-{i}" for i in range(n)])
    return frame


def test_no_shift_is_no_drift() -> None:
    result = compare_features(table(400, 0), table(300, 1), DriftSpec(method="ks", threshold=0.01))
    assert not result.dataset_drift and result.drifted_columns == []
    assert set(result.columns) == {"brightness", "contrast", "sharpness", "entropy"}  # image_id is not a feature
    assert all(c.score > 0.01 for c in result.columns.values())  # KS p-values above the threshold


def test_shift_in_half_the_columns_drifts_at_share_one_half() -> None:
    reference, current = table(400, 0), table(300, 1, {"brightness": 1.5, "contrast": -1.5})
    result = compare_features(reference, current, DriftSpec(method="ks", threshold=0.01, drift_share=0.5))
    assert result.dataset_drift and result.drift_share == 0.5
    assert result.drifted_columns == ["brightness", "contrast"]
    assert result.columns["brightness"].score < 1e-6 and result.columns["brightness"].method == "K-S p_value"
    stricter = compare_features(reference, current, DriftSpec(method="ks", threshold=0.01, drift_share=0.75))
    assert stricter.drift_share == 0.5 and not stricter.dataset_drift  # same scores, higher bar


@pytest.mark.parametrize("method,threshold", [("wasserstein", 0.3), ("psi", 0.2), ("jensenshannon", 0.2)])
def test_distance_methods_flag_the_shifted_column_only(method: str, threshold: float) -> None:
    result = compare_features(
        table(500, 0),
        table(500, 1, {"sharpness": 2.0}),
        DriftSpec(method=method, threshold=threshold, drift_share=0.25),
    )
    assert result.drifted_columns == ["sharpness"] and result.dataset_drift
    assert result.columns["sharpness"].score > threshold > result.columns["entropy"].score


def test_html_report_is_written(tmp_path) -> None:
    path = tmp_path / "drift" / "report.html"
    result = compare_features(table(50, 0), table(50, 1, {"entropy": 3}), DriftSpec(method="ks"), path)
    assert result.report_html == str(path) and path.stat().st_size > 10_000 and "entropy" in path.read_text()


def test_missing_columns_and_tiny_tables_are_named() -> None:
    with pytest.raises(DriftError, match=r"lack reference columns \['entropy'\].*brightness, contrast"):
        compare_features(table(20, 0), table(20, 1).drop(columns="entropy"), DriftSpec())
    with pytest.raises(DriftError, match="incoming feature table has 1 rows"):
        compare_features(table(20, 0), table(1, 1), DriftSpec())


def test_dataset_drift_rule() -> None:
    assert dataset_drift({"a": True, "b": False}, 0.5) == (0.5, True)
    assert dataset_drift({"a": True, "b": False, "c": False}, 0.5) == (pytest.approx(1 / 3), False)
    with pytest.raises(DriftError):
        dataset_drift({}, 0.5)


def test_with_extra_sources_appends_once_and_only_under_drift_incoming() -> None:
    from canvascraft.errors import SpecError

    spec = PipelineSpec.model_validate(
        {
            "name": "p",
            "data": {"source": "s3://bkt/a", "extra_sources": ["s3://bkt/b"]},
            "drift": {"incoming": "s3://bkt/incoming"},
        }
    )
    grown = with_extra_sources(spec, ["s3://bkt/incoming", "s3://bkt/incoming/day2", "s3://bkt/incoming"])
    assert grown.data.extra_sources == ["s3://bkt/b", "s3://bkt/incoming", "s3://bkt/incoming/day2"]
    assert grown.data.source == "s3://bkt/a"
    assert with_extra_sources(spec, None) is spec
    # an event or a Run form may add the new images, never point training anywhere else
    for outside in ("s3://bkt/a", "s3://bkt/incoming-other", "s3://evil/incoming", "/tmp/x"):
        with pytest.raises(
            SpecError, match=r"not under the spec's drift\.incoming prefix; allowed values: s3://bkt/incoming"
        ):
            with_extra_sources(spec, [outside])
    closed = PipelineSpec.model_validate({"name": "p", "data": {"source": "s3://bkt/a"}})
    with pytest.raises(SpecError, match=r"sets no drift\.incoming prefix"):
        with_extra_sources(closed, ["s3://bkt/incoming"])
