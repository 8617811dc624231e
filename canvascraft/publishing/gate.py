"""The promotion gate (champion/challenger): decide on two scores computed on the same terms.

FID is biased at small N and depends on the feature network, its dims, the resize method and the reference set
(Heusel et al. 2017; Chong & Forsyth 2020), so two scores are compared only when their comparability keys match
(``FidScore.comparability_key``). A retrain's reference is its own (new) dataset, so its score never matches the
champion's as registered: the gate then re-scores the champion on the candidate's terms (same reference
statistics, weights, dims, resize, N and seed) and decides on that pair. A champion that cannot be loaded or
sampled gives the verdict "champion unusable", resolved by ``publish.gate.on_unusable_champion``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from canvascraft.evaluation.score_records import HIGHER_IS_BETTER, FidScore, GateMetric
from canvascraft.hashing import stable_hash

# champion version -> the champion's score on the candidate's terms (raises when the champion is unusable)
Rescorer = Callable[[str], FidScore]
Basis = Literal[
    "first-version",
    "as-registered",
    "rescored",
    "rescore-cached",
    "champion-unusable",
    "incomparable",
    "already-champion",
]


class GateVerdict(BaseModel):
    """What the gate decided and on which pair of scores (recorded on the candidate version as tags)."""

    promoted: bool
    reason: str
    metric: GateMetric
    basis: Basis = Field(description="How the champion's side of the comparison was obtained.")
    candidate: FidScore
    champion_version: str | None = None
    champion: FidScore | None = Field(default=None, description="The champion's score on the candidate's terms.")
    champion_registered: FidScore | None = Field(default=None, description="The champion's own registered score.")

    def summary(self) -> str:
        """One line for logs, events and the CLI: both scores and the verdict."""
        new = self.candidate.metric(self.metric)
        old = self.champion.metric(self.metric) if self.champion else None
        if new is None:
            return f"{self.metric} missing ({self.basis}): {self.reason}"
        pair = f"{self.metric} {new:.4f}" + (
            f" vs champion v{self.champion_version} {old:.4f}" if old is not None else ""
        )
        return f"{pair} ({self.basis}): {self.reason}"


def rescore_key(candidate: FidScore) -> str:
    """Cache key of a champion re-score: the candidate's comparability key (reference, weights, dims, resize, N)."""
    n, n_real, dims, weights, resize, reference, classifier = candidate.comparability_key()
    key = {"n": n, "n_real": n_real, "dims": dims, "weights_sha256": weights, "resize": resize, "reference": reference}
    if classifier is not None:  # a candidate without a classifier score keeps the key its rescores were cached under
        key["classifier"] = list(classifier)
    return stable_hash(key, length=16)


def decide(candidate: FidScore, champion: FidScore | None, metric: str, margin: float) -> tuple[bool, str]:
    """The rule: promote the first version; else only a comparable score better by ``margin`` (FID and KID lower,
    the classifier score higher)."""
    if champion is None:
        return True, "first version with a score: promoted"
    if not candidate.comparable_with(champion):
        diff = candidate.incomparable_fields(champion)
        return False, f"not comparable with the champion (differs in {', '.join(sorted(diff))}): not promoted"
    new, old = candidate.metric(metric), champion.metric(metric)
    if new is None or old is None:
        return False, f"{metric} missing on one side: not promoted"
    if (
        metric == "classifier_score"
        and candidate.classifier
        and champion.classifier
        and candidate.classifier.coverage < champion.classifier.coverage
    ):
        # Confidence alone rewards collapse: uniform noise reads as one Fashion-MNIST class at p ~0.95, above real
        # images (~0.84); the number of classes drawn confidently exposes it (docs/quality.md).
        return False, (
            f"{metric}: draws {candidate.classifier.coverage} classes confidently, the champion "
            f"{champion.classifier.coverage}: not promoted"
        )
    if metric in HIGHER_IS_BETTER and new > old + margin:
        return True, f"{metric} {new:.4f} beats champion's {old:.4f} by more than margin {margin}: promoted"
    if metric not in HIGHER_IS_BETTER and new < old - margin:
        return True, f"{metric} {new:.4f} beats champion's {old:.4f} by more than margin {margin}: promoted"
    return False, f"{metric} {new:.4f} does not beat champion's {old:.4f} by margin {margin}: not promoted"


def judge(
    candidate: FidScore,
    champion_version: str | None,
    champion_registered: FidScore | None,
    *,
    metric: GateMetric,
    margin: float,
    rescore: Rescorer | None = None,
    cached: FidScore | None = None,
    on_unusable: Literal["promote", "keep"] = "keep",
) -> GateVerdict:
    """Decide like for like: as registered when comparable, else on the champion re-scored (or its cached re-score)."""
    base: dict[str, Any] = {
        "metric": metric,
        "candidate": candidate,
        "champion_version": champion_version,
        "champion_registered": champion_registered,
    }
    if champion_version is None:
        return GateVerdict(promoted=True, reason="first version with a score: promoted", basis="first-version", **base)
    if champion_registered is not None and candidate.comparable_with(champion_registered):
        promote, reason = decide(candidate, champion_registered, metric, margin)
        return GateVerdict(promoted=promote, reason=reason, basis="as-registered", champion=champion_registered, **base)
    if cached is not None and candidate.comparable_with(cached):
        promote, reason = decide(candidate, cached, metric, margin)
        return GateVerdict(promoted=promote, reason=reason, basis="rescore-cached", champion=cached, **base)
    if rescore is None:
        promote, reason = decide(candidate, champion_registered, metric, margin)
        return GateVerdict(promoted=promote, reason=reason, basis="incomparable", champion=champion_registered, **base)
    try:
        rescored = rescore(champion_version)
    except Exception as exc:  # noqa: BLE001 - any failure to load/sample the champion is a verdict, never a crash
        promote = on_unusable == "promote"
        reason = (
            f"champion unusable: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}; "
            f"publish.gate.on_unusable_champion={on_unusable}: {'promoted' if promote else 'not promoted'}"
        )
        return GateVerdict(promoted=promote, reason=reason, basis="champion-unusable", **base)
    promote, reason = decide(candidate, rescored, metric, margin)
    return GateVerdict(promoted=promote, reason=reason, basis="rescored", champion=rescored, **base)
