"""Training-set curation on a feature frame: the spec's filters (rows with a missing filter feature are dropped and
counted) and per-feature summary statistics (the drift reference's statistics)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel

from canvascraft.errors import ParameterError
from canvascraft.features.schema import JOIN_KEY
from canvascraft.spec import FilterSpec

_OPS = {
    ">=": lambda s, v: s >= v,
    ">": lambda s, v: s > v,
    "<=": lambda s, v: s <= v,
    "<": lambda s, v: s < v,
    "==": lambda s, v: s == v,
    "!=": lambda s, v: s != v,
}


class FilterOutcome(BaseModel):
    """How many rows fail one filter (counted independently of the other filters)."""

    feature: str
    op: str
    value: float
    rows_failed: int


class FilterReport(BaseModel):
    """Training-set curation: rows in, rows kept, rows with a missing filter feature, failures per filter."""

    rows_in: int
    rows_kept: int
    rows_missing: int
    filters: list[FilterOutcome]


def apply_filters(frame: pd.DataFrame, filters: Sequence[FilterSpec]) -> tuple[pd.DataFrame, FilterReport]:
    """Keep rows passing every filter; rows with a missing (NaN) filter feature are dropped and counted."""
    columns = [c for c in frame.columns if c != JOIN_KEY]
    keep = pd.Series(True, index=frame.index)
    missing = pd.Series(False, index=frame.index)
    outcomes = []
    for index, spec in enumerate(filters):
        if spec.feature not in columns:
            raise ParameterError(
                f"features.filters[{index}].feature: unknown feature {spec.feature!r}; "
                f"allowed values: {', '.join(columns) or '(no feature columns)'}"
            )
        values = pd.to_numeric(frame[spec.feature], errors="coerce")
        passed = _OPS[spec.op](values, spec.value) & values.notna()
        missing |= values.isna()
        keep &= passed
        failed = int((~passed).sum())
        outcomes.append(FilterOutcome(feature=spec.feature, op=spec.op, value=spec.value, rows_failed=failed))
    kept = frame[keep].reset_index(drop=True)
    report = FilterReport(rows_in=len(frame), rows_kept=len(kept), rows_missing=int(missing.sum()), filters=outcomes)
    return kept, report


def summary_statistics(frame: pd.DataFrame) -> dict[str, dict[str, float | int | None]]:
    """Per numeric feature: count, missing, mean, std, min, 5th/50th/95th percentile, max (NaN as None)."""
    stats: dict[str, dict[str, float | int | None]] = {}
    for column in frame.columns:
        if column == JOIN_KEY or not pd.api.types.is_numeric_dtype(frame[column]):
            continue
        values = frame[column].astype("float64")
        present = values.dropna()
        row: dict[str, float | int | None] = {"count": int(present.size), "missing": int(values.isna().sum())}
        for key, value in (
            ("mean", present.mean()),
            ("std", present.std(ddof=0)),
            ("min", present.min()),
            ("p05", present.quantile(0.05)),
            ("p50", present.quantile(0.5)),
            ("p95", present.quantile(0.95)),
            ("max", present.max()),
        ):
            row[key] = None if present.empty or not np.isfinite(value) else float(value)
        stats[column] = row
    return stats
