"""The gate's rules without a registry: like for like, or a clear verdict why not."""

from __future__ import annotations

import pytest

from canvascraft.evaluation.classifier_score import ClassifierScore
from canvascraft.evaluation.scores import FidScore
from canvascraft.publishing.gate import decide, judge, rescore_key

SHA = "b" * 64


def score(fid: float, n: int = 100, reference: str = "dv1", dims: int = 64) -> FidScore:
    return FidScore(
        fid=fid,
        kid_mean=fid / 100,
        n=n,
        n_real=n,
        dims=dims,
        weights_sha256=SHA,
        resize="bilinear",
        reference=reference,
    )


def test_decide_rules() -> None:
    assert decide(score(10), None, "fid", 0.0)[0]
    assert decide(score(9), score(10), "fid", 0.5)[0]
    assert not decide(score(9.8), score(10), "fid", 0.5)[0]  # within the margin
    ok, reason = decide(score(1, n=50), score(10), "fid", 0.0)
    assert not ok and "not comparable" in reason and "n" in reason
    assert decide(score(9, reference="x"), score(1, reference="x"), "kid_mean", 0.0) == (
        False,
        "kid_mean 0.0900 does not beat champion's 0.0100 by margin 0.0: not promoted",
    )


def test_judge_without_rescorer_keeps_the_old_refusal() -> None:
    verdict = judge(score(1, reference="dv2"), "3", score(10), metric="fid", margin=0.0)
    assert not verdict.promoted and verdict.basis == "incomparable" and "differs in reference" in verdict.reason


def test_judge_rejects_a_rescore_that_is_not_on_the_candidates_terms() -> None:
    """A rescorer returning a score on other terms (wrong N) cannot promote: the pair is still incomparable."""
    verdict = judge(
        score(1, reference="dv2"),
        "3",
        score(10),
        metric="fid",
        margin=0.0,
        rescore=lambda v: score(20, n=50, reference="dv2"),
    )
    assert not verdict.promoted and verdict.basis == "rescored" and "not comparable" in verdict.reason


def test_rescore_key_follows_every_comparability_field() -> None:
    base = rescore_key(score(1))
    assert rescore_key(score(2)) == base  # the value is not part of the key
    for changed in (score(1, n=50), score(1, reference="dv2"), score(1, dims=2048)):
        assert rescore_key(changed) != base


@pytest.mark.parametrize("policy", ["keep", "promote"])
def test_unusable_champion_follows_the_policy(policy: str) -> None:
    def boom(version: str) -> FidScore:
        raise RuntimeError("no checkpoint\nsecond line")

    verdict = judge(
        score(1, reference="dv2"), "3", score(10), metric="fid", margin=0.0, rescore=boom, on_unusable=policy
    )  # type: ignore[arg-type]
    assert verdict.promoted is (policy == "promote") and verdict.basis == "champion-unusable"
    assert (
        verdict.reason.startswith("champion unusable: RuntimeError: no checkpoint;")
        and "second line" not in verdict.reason
    )


def scored(fid: float, classifier_score: float, classifier: str = "clf", reference: str = "dv1") -> FidScore:
    """A score with a classifier part (mean top-class probability ``classifier_score``)."""
    part = ClassifierScore(
        mean_top_probability=classifier_score,
        coverage=9,
        num_classes=10,
        confident=0.8,
        n=100,
        classifier_accuracy=0.95,
        classifier=classifier,
    )
    return score(fid, reference=reference).model_copy(update={"classifier": part})


def test_classifier_score_is_higher_is_better() -> None:
    """The better of two candidates by classifier score wins even when its FID is worse."""
    champion = scored(fid=5.0, classifier_score=0.70)
    assert decide(scored(fid=9.0, classifier_score=0.85), champion, "classifier_score", 0.0)[0]
    assert not decide(scored(fid=1.0, classifier_score=0.60), champion, "classifier_score", 0.0)[0]
    assert not decide(scored(fid=9.0, classifier_score=0.72), champion, "classifier_score", 0.05)[0]  # margin


def test_classifier_scores_compare_only_under_the_same_classifier() -> None:
    ok, reason = decide(scored(1.0, 0.9, classifier="a"), scored(1.0, 0.5, classifier="b"), "classifier_score", 0.0)
    assert not ok and "differs in classifier" in reason
    ok, reason = decide(scored(1.0, 0.9), score(1.0), "classifier_score", 0.0)  # champion without a classifier part
    assert not ok and "differs in classifier" in reason


def test_judge_rescores_a_champion_without_a_classifier_score() -> None:
    """A champion registered before the classifier score existed is re-scored on the candidate's terms."""
    verdict = judge(
        scored(3.0, 0.9), "2", score(1.0), metric="classifier_score", margin=0.0, rescore=lambda v: scored(1.0, 0.6)
    )
    assert verdict.promoted and verdict.basis == "rescored" and verdict.champion is not None
    assert "classifier_score 0.9000" in verdict.summary() and "0.6000" in verdict.summary()


def test_rescore_key_includes_the_classifier() -> None:
    assert rescore_key(scored(1, 0.9, classifier="a")) != rescore_key(scored(1, 0.9, classifier="b"))
    assert rescore_key(scored(1, 0.9)) != rescore_key(score(1))


def test_classifier_score_never_promotes_fewer_classes() -> None:
    """A collapsed candidate (confident on one class) loses to a champion that draws more classes."""
    champion = scored(fid=5.0, classifier_score=0.80)
    collapsed = scored(fid=5.0, classifier_score=0.95).model_copy(
        update={"classifier": scored(0, 0.95).classifier.model_copy(update={"coverage": 1})}
    )
    ok, reason = decide(collapsed, champion, "classifier_score", 0.0)
    assert not ok and reason == "classifier_score: draws 1 classes confidently, the champion 9: not promoted"
