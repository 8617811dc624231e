"""Typed results for tests: a score, a gate verdict and a train run's result with only the fields a test sets."""

from __future__ import annotations

from typing import Any

from canvascraft.evaluation.score_records import ClassifierScore, FidScore
from canvascraft.outcomes import (
    BestConfig,
    Evaluation,
    FeaturesOutcome,
    PublishOutcome,
    TrainingSelection,
    TrainRunResult,
    TuneOutcome,
)
from canvascraft.publishing.gate import GateVerdict

WEIGHTS = "0" * 64


def score(fid: float = 33.3333, n: int = 200, **fields: Any) -> FidScore:
    """A 64-d bilinear FID score (plus any other FidScore field)."""
    return FidScore(**{"fid": fid, "n": n, "dims": 64, "resize": "bilinear", "weights_sha256": WEIGHTS, **fields})


def classifier(mean_top_probability: float = 0.873, coverage: int = 10) -> ClassifierScore:
    """A 10-class classifier score."""
    return ClassifierScore(
        mean_top_probability=mean_top_probability,
        coverage=coverage,
        num_classes=10,
        confident=0.8,
        n=200,
        classifier_accuracy=0.95,
        classifier="digits-logreg",
    )


def verdict(candidate: FidScore, champion: FidScore | None = None, promoted: bool = True) -> GateVerdict:
    """A gate verdict on FID (rescored when there is a champion, else a first version)."""
    return GateVerdict(
        promoted=promoted,
        reason="promoted" if promoted else "not promoted",
        metric="fid",
        basis="rescored" if champion is not None else "first-version",
        candidate=candidate,
        champion_version="1" if champion is not None else None,
        champion=champion,
    )


def published(
    candidate: FidScore, version: str = "5", champion: FidScore | None = None, promoted: bool = True
) -> PublishOutcome:
    """A published version with its gate verdict."""
    return PublishOutcome(
        published=True,
        reason="first version" if champion is None else "compared",
        model="canvascraft-digits",
        version=version,
        promoted=promoted,
        verdict=verdict(candidate, champion, promoted),
        summary=f"fid {candidate.fid}",
        aliases=["candidate", "champion"] if promoted else ["candidate"],
        score=candidate,
    )


def search(trials: list[dict[str, Any]] | None = None, best: dict[str, float] | None = None) -> TuneOutcome:
    """A finished search with its trial rows."""
    return TuneOutcome(
        best_checkpoint="/tmp/checkpoint",
        best_config=BestConfig(trainer="dcgan", params={}),
        best_metrics=best if best is not None else {"loss": 0.21, "images_per_sec": 420.0},
        trials=trials if trials is not None else [{}, {}],
        wall_seconds=10.0,
        tune_overhead_seconds=1.0,
    )


def train_result(**parts: Any) -> TrainRunResult:
    """A train run's result: data counts always, search/evaluation/publish/mlflow_run_id only when given."""
    base: dict[str, Any] = {
        "pipeline": "digits-quick",
        "dataset_version": "dv42",
        "valid": 1797,
        "quarantined": 2,
        "shards": "shards/dv42/stack",
        "images": 1797,
        "features": FeaturesOutcome(rows_materialized=3594),
        "training_set": TrainingSelection(kept=1790, rows=1797),
    }
    if isinstance(parts.get("evaluation"), FidScore):  # a bare score stands for its evaluation
        parts["evaluation"] = Evaluation(score=parts["evaluation"], grid="/tmp/grid.png", n=parts["evaluation"].n)
    return TrainRunResult(**{**base, **parts})
