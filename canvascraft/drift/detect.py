"""The drift decision: Evidently's ``DataDriftPreset`` on two feature tables, read back into a typed result.

Per-column verdicts come from the preset's own tests (status FAIL = drifted), so the method/threshold semantics
(p-value below, distance above) stay Evidently's; the dataset verdict is ``share of drifted columns >= drift_share``,
the rule of Evidently's "Share of Drifted Columns" test.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, Field

from canvascraft.errors import DriftError
from canvascraft.spec import DriftSpec

JOIN_KEY = "image_id"  # canvascraft.features.definitions.JOIN_KEY (not imported: that pulls in Feast)
_METHOD = re.compile(r"drift detection method is (?P<method>.+?)\. ")
MIN_ROWS = 2


class ColumnDrift(BaseModel):
    """One feature's drift score, the test Evidently applied, and its verdict."""

    score: float | None
    method: str
    threshold: float | None = None
    drifted: bool


class DriftResult(BaseModel):
    """Outcome of one drift check: share and verdict, per-feature scores, where the HTML report is, and lineage."""

    pipeline: str = ""
    dataset_drift: bool
    drift_share: float = Field(description="Share of feature columns that drifted.")
    drift_share_threshold: float = Field(description="spec.drift.drift_share: dataset drift at or above it.")
    method: str | None = Field(default=None, description="spec.drift.method (None: Evidently's default per column).")
    threshold: float | None = None
    drifted_columns: list[str]
    columns: dict[str, ColumnDrift]
    reference_rows: int
    current_rows: int
    report_html: str | None = None
    reference_dataset_version: str | None = None
    reference_model: str | None = None
    reference_model_version: str | None = None
    reference_table: str | None = None
    incoming: str | None = None
    incoming_dataset_version: str | None = None
    mlflow_run_id: str | None = None
    report_uri: str | None = Field(default=None, description="MLflow artifact URI of the HTML report.")

    def scores(self) -> dict[str, float]:
        """Per-feature drift scores (columns Evidently could not score are left out)."""
        return {name: c.score for name, c in self.columns.items() if c.score is not None}


def feature_columns(reference: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    """Numeric feature columns of the reference (no ``image_id``); the current table must hold every one."""
    columns = [c for c in reference.columns if c != JOIN_KEY and pd.api.types.is_numeric_dtype(reference[c])]
    if not columns:
        raise DriftError(f"reference table: no numeric feature columns; got columns {list(reference.columns)}")
    missing = [c for c in columns if c not in current.columns]
    if missing:
        raise DriftError(
            f"incoming features lack reference columns {missing}; allowed values (reference columns): "
            f"{', '.join(columns)}. Were the palettes of spec.features.palettes changed since the champion was trained?"
        )
    return columns


def dataset_drift(drifted: Mapping[str, bool], drift_share: float) -> tuple[float, bool]:
    """Share of drifted columns and the dataset verdict (``share >= drift_share``)."""
    if not drifted:
        raise DriftError("drift decision: no feature columns to decide on")
    share = sum(bool(v) for v in drifted.values()) / len(drifted)
    return share, share >= drift_share


def _run_report(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], spec: DriftSpec):
    """Evidently snapshot of ``DataDriftPreset`` with tests (current first, then reference)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=columns)
    preset = DataDriftPreset(columns=columns, method=spec.method, threshold=spec.threshold,
                             drift_share=spec.drift_share)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant columns: numpy divides by zero inside stattests
        return Report([preset], include_tests=True).run(
            Dataset.from_pandas(current[columns].astype("float64"), data_definition=definition),
            Dataset.from_pandas(reference[columns].astype("float64"), data_definition=definition),
        )


def compare_features(
    reference: pd.DataFrame, current: pd.DataFrame, spec: DriftSpec, html_path: Path | None = None
) -> DriftResult:
    """Drift of ``current`` against ``reference`` under ``spec`` (method, threshold, drift share); HTML if asked."""
    columns = feature_columns(reference, current)
    for name, frame in (("reference", reference), ("incoming", current)):
        if len(frame) < MIN_ROWS:
            raise DriftError(f"{name} feature table has {len(frame)} rows; a drift check needs at least {MIN_ROWS}")
    snapshot = _run_report(reference, current, columns, spec)
    data = snapshot.dict()
    scores: dict[str, float | None] = {}
    thresholds: dict[str, float | None] = {}
    for metric in data["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith(":ValueDrift") and config.get("column") in columns:
            value = metric.get("value")
            scores[config["column"]] = None if value is None or pd.isna(value) else float(value)
            thresholds[config["column"]] = config.get("threshold")
    verdicts: dict[str, tuple[bool, str]] = {}
    for test in data["tests"]:
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith(":ValueDrift") and params.get("column") in columns:
            found = _METHOD.search(test.get("description", "") + " ")
            verdicts[params["column"]] = (test["status"] == "FAIL",
                                          found["method"] if found else str(params.get("method")))
    missing = [c for c in columns if c not in verdicts]
    if missing:
        raise DriftError(f"Evidently returned no drift test for columns {missing}")
    share, drift = dataset_drift({c: verdicts[c][0] for c in columns}, spec.drift_share)
    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(html_path))  # a pathlib.Path makes save_html write nothing
    return DriftResult(
        dataset_drift=drift, drift_share=share, drift_share_threshold=spec.drift_share, method=spec.method,
        threshold=spec.threshold, drifted_columns=[c for c in columns if verdicts[c][0]],
        columns={c: ColumnDrift(score=scores.get(c), method=verdicts[c][1], threshold=thresholds.get(c),
                                drifted=verdicts[c][0]) for c in columns},
        reference_rows=len(reference), current_rows=len(current),
        report_html=str(html_path) if html_path is not None else None,
    )


def drift_markdown(result: DriftResult, max_rows: int = 60) -> str:
    """Markdown summary of a drift check: verdict, share, where the report is, per-feature scores."""
    verdict = "**DRIFT**" if result.dataset_drift else "no drift"
    lines = [
        f"# Drift check of `{result.pipeline}`: {verdict}",
        "",
        f"- drift share **{result.drift_share:.3f}** (dataset drift at >= {result.drift_share_threshold}); "
        f"method {result.method or 'Evidently default'}, threshold {result.threshold or 'default'}",
        f"- reference: dataset version `{result.reference_dataset_version}` ({result.reference_rows} rows, "
        f"{result.reference_model} v{result.reference_model_version} @champion)",
        f"- incoming: `{result.incoming}` dataset version `{result.incoming_dataset_version}` "
        f"({result.current_rows} images)",
        f"- HTML report: `{result.report_uri or result.report_html}`",
        "",
        "| feature | score | method | drifted |",
        "|---|---|---|---|",
    ]
    ordered = sorted(result.columns.items(), key=lambda kv: (not kv[1].drifted, kv[0]))
    for name, column in ordered[:max_rows]:
        score = "n/a" if column.score is None else f"{column.score:.4g}"
        lines.append(f"| {name} | {score} | {column.method} | {'yes' if column.drifted else ''} |")
    if len(ordered) > max_rows:
        lines.append(f"| ... {len(ordered) - max_rows} more | | | |")
    return "\n".join(lines)
