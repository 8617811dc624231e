"""Drift of new images against the champion's reference feature table (Evidently), without Prefect."""

from canvascraft.drift.check import DriftCheck, check_drift, incoming_uri, log_drift_run
from canvascraft.drift.detect import (
    ColumnDrift,
    DriftResult,
    compare_features,
    dataset_drift,
    drift_markdown,
    feature_columns,
)
from canvascraft.drift.incoming import ingest_incoming, palette_frame
from canvascraft.drift.reference import ReferenceLocation, locate_reference

__all__ = [
    "ColumnDrift",
    "DriftCheck",
    "DriftResult",
    "ReferenceLocation",
    "check_drift",
    "compare_features",
    "dataset_drift",
    "drift_markdown",
    "feature_columns",
    "incoming_uri",
    "ingest_incoming",
    "locate_reference",
    "log_drift_run",
    "palette_frame",
]
