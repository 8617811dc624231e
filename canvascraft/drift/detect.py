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
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

from canvascraft.drift.embeddings import EmbeddingsDriftResult
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


DriftStatus = Literal["drift", "no drift", "no new images", "already retrained"]


class DriftResult(BaseModel):
    """Outcome of one drift check: share and verdict, per-feature scores, where the HTML report is, and lineage."""

    pipeline: str = ""
    status: DriftStatus = Field(default="no drift", description="What the check concluded (only 'drift' emits).")
    dataset_drift: bool = Field(default=False, description="Palette verdict: share of drifted columns >= threshold.")
    drift_share: float = Field(default=0.0, description="Share of feature columns that drifted.")
    drift_share_threshold: float = Field(
        default=0.5, description="spec.drift.drift_share: dataset drift at or above it."
    )
    method: str | None = Field(default=None, description="spec.drift.method (None: Evidently's default per column).")
    threshold: float | None = None
    drifted_columns: list[str] = Field(default_factory=list)
    columns: dict[str, ColumnDrift] = Field(default_factory=dict)
    reference_rows: int = 0
    current_rows: int = 0
    incoming_images: int = Field(default=0, description="Unique valid images under the incoming prefix.")
    new_images: int = Field(default=0, description="Of those, images not in the champion's training snapshot.")
    embeddings: EmbeddingsDriftResult | None = None
    raise_on: Literal["palettes", "embeddings", "any"] = "palettes"
    retrained_by: dict[str, Any] | None = Field(
        default=None,
        description="The train run that already answered "
        "this incoming dataset version, when status is 'already retrained'.",
    )
    report_html: str | None = None
    reference_dataset_version: str | None = None
    reference_model: str | None = None
    reference_model_version: str | None = None
    reference_table: str | None = None
    incoming: str | None = None
    incoming_dataset_version: str | None = None
    mlflow_run_id: str | None = None
    report_uri: str | None = Field(default=None, description="MLflow artifact URI of the HTML report.")

    @property
    def event_due(self) -> bool:
        """True when the verdict named by ``raise_on`` says drift (and the check found new, unanswered data)."""
        if self.status in ("no new images", "already retrained"):
            return False
        embedded = bool(self.embeddings and self.embeddings.drifted)
        return {"palettes": self.dataset_drift, "embeddings": embedded, "any": self.dataset_drift or embedded}[
            self.raise_on
        ]

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
    preset = DataDriftPreset(
        columns=columns, method=spec.method, threshold=spec.threshold, drift_share=spec.drift_share
    )
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
            verdicts[params["column"]] = (
                test["status"] == "FAIL",
                found["method"] if found else str(params.get("method")),
            )
    missing = [c for c in columns if c not in verdicts]
    if missing:
        raise DriftError(f"Evidently returned no drift test for columns {missing}")
    share, drift = dataset_drift({c: verdicts[c][0] for c in columns}, spec.drift_share)
    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(html_path))  # a pathlib.Path makes save_html write nothing
    return DriftResult(
        dataset_drift=drift,
        drift_share=share,
        drift_share_threshold=spec.drift_share,
        method=spec.method,
        threshold=spec.threshold,
        drifted_columns=[c for c in columns if verdicts[c][0]],
        columns={
            c: ColumnDrift(
                score=scores.get(c), method=verdicts[c][1], threshold=thresholds.get(c), drifted=verdicts[c][0]
            )
            for c in columns
        },
        reference_rows=len(reference),
        current_rows=len(current),
        report_html=str(html_path) if html_path is not None else None,
    )


def drift_line(result: DriftResult, event_id: str | None = None) -> str:
    """The one-line outcome of a drift check for the flow log."""
    head = (
        f"drift check of {result.incoming} ({result.new_images} new of {result.incoming_images} images) vs dataset "
        f"{result.reference_dataset_version}: {result.status.upper() if result.status == 'drift' else result.status}"
    )
    if result.status == "already retrained" and result.retrained_by:
        return head + f" by MLflow run {result.retrained_by.get('run_id')}; no event"
    if result.status == "no new images":
        return head + "; no event"
    detail = (
        f"; palettes share {result.drift_share:.3f} (threshold {result.drift_share_threshold}) -> "
        f"{'drift' if result.dataset_drift else 'no drift'}, drifted {result.drifted_columns}"
    )
    if result.embeddings:
        detail += (
            f"; embeddings {result.embeddings.method} score {result.embeddings.score:.4f} -> "
            f"{'drift' if result.embeddings.drifted else 'no drift'}"
        )
    return (
        head
        + detail
        + f"; raise_on {result.raise_on}; report {result.report_uri or result.report_html}"
        + (f"; event {event_id}" if event_id else "; no event")
    )


def drift_markdown(result: DriftResult, max_rows: int = 60) -> str:
    """Markdown summary of a drift check: verdict, share, where the report is, per-feature scores."""
    verdict = {"drift": "**DRIFT**"}.get(result.status, result.status)
    lines = [
        f"# Drift check of `{result.pipeline}`: {verdict}",
        "",
        (
            f"- incoming `{result.incoming}`: {result.incoming_images} images, {result.new_images} not in the "
            "champion's training snapshot (only those are compared)"
        ),
    ]
    if result.retrained_by:
        lines.append(
            f"- already retrained on this incoming version: MLflow run `{result.retrained_by.get('run_id')}` "
            f"({result.retrained_by.get('status')}; registered v{result.retrained_by.get('registered_version')}, "
            f"promoted {result.retrained_by.get('promoted')}): no event"
        )
    if result.status in ("no new images", "already retrained"):
        return "\n".join(lines)
    if result.embeddings:
        e = result.embeddings
        lines.append(
            f"- embeddings ({e.dims}-d Inception, {e.method}): score {e.score:.4f}"
            f" (threshold {e.threshold if e.threshold is not None else 'bootstrap q0.95'}) -> "
            f"{'DRIFT' if e.drifted else 'no drift'}; report `{e.report_html}`"
        )
    lines.append(f"- event raised on: {result.raise_on} -> {'yes' if result.event_due else 'no'}")
    lines += [
        (
            f"- drift share **{result.drift_share:.3f}** (dataset drift at >= {result.drift_share_threshold}); "
            f"method {result.method or 'Evidently default'}, threshold {result.threshold or 'default'}"
        ),
        (
            f"- reference: dataset version `{result.reference_dataset_version}` ({result.reference_rows} rows, "
            f"{result.reference_model} v{result.reference_model_version} @champion)"
        ),
        (
            f"- incoming: `{result.incoming}` dataset version `{result.incoming_dataset_version}` "
            f"({result.current_rows} images)"
        ),
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
