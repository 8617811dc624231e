"""Drift: CanvasCraft's ``compare_features`` (the Evidently step of drift_check) vs Evidently called directly."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from bench.common import Row, Sample, paired_ratio, timed


def frames(n: int, columns: int = 30, shift: float = 0.0, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    data = {
        f"f{i:02d}": (rng.standard_normal(n) + (shift if i % 3 == 0 else 0.0)).astype("float32") for i in range(columns)
    }
    frame = pd.DataFrame(data)
    frame.insert(0, "image_id", [f"{seed}-{i}" for i in range(n)])
    return frame


def evidently_direct(reference, current, columns):
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=columns)
    snapshot = Report([DataDriftPreset(columns=columns)], include_tests=True).run(
        Dataset.from_pandas(current[columns].astype("float64"), data_definition=definition),
        Dataset.from_pandas(reference[columns].astype("float64"), data_definition=definition),
    )
    return snapshot.dict()


def run(root: Path, sizes: list[int], repeats: int) -> tuple[list[Row], str]:
    if not (Path(__file__).resolve().parent.parent / "canvascraft" / "drift").is_dir():
        return [], "not measured: drift module not present"
    from canvascraft.drift import compare_features
    from canvascraft.spec import DriftSpec

    rows = []
    for n in sizes:
        reference, current = frames(n, seed=0), frames(n, shift=0.2, seed=1)
        columns = [c for c in reference.columns if c != "image_id"]
        evidently_direct(reference.head(200), current.head(200), columns)  # warm-up imports
        ours, theirs = [], []
        for _ in range(repeats):
            ours.append(timed(partial(compare_features, reference, current, DriftSpec()))[0])
            theirs.append(timed(partial(evidently_direct, reference, current, columns))[0])
        ratio, spread = paired_ratio(ours, theirs)
        rows.append(
            Row(
                "drift comparison",
                f"{n:,} rows x {len(columns)} features per side",
                "s",
                Sample(ours),
                Sample(theirs),
                "Evidently DataDriftPreset Report.run + dict()",
                ratio,
                spread,
                ratio_label="time CanvasCraft / Evidently",
                digits=2,
            )
        )
    text = (
        "Measures `canvascraft.drift.compare_features` (the Evidently step of the drift_check flow: column "
        "checks, report, per-column verdicts) on synthetic float32 feature tables, not the whole flow "
        "(ingest of the incoming prefix, palettes and MLflow logging are measured in their own sections). "
        "Time grows roughly linearly with rows (10x rows -> ~4x time here: Evidently's fixed report cost "
        "dominates at 10k)."
    )
    return rows, text
