"""The gate's rules without a registry: like for like, or a clear verdict why not."""

from __future__ import annotations

import pytest

from canvascraft.evaluation.scores import FidScore
from canvascraft.publishing.gate import decide, judge, rescore_key

SHA = "b" * 64


def score(fid: float, n: int = 100, reference: str = "dv1", dims: int = 64) -> FidScore:
    return FidScore(fid=fid, kid_mean=fid / 100, n=n, n_real=n, dims=dims, weights_sha256=SHA, resize="bilinear",
                    reference=reference)


def test_decide_rules() -> None:
    assert decide(score(10), None, "fid", 0.0)[0]
    assert decide(score(9), score(10), "fid", 0.5)[0]
    assert not decide(score(9.8), score(10), "fid", 0.5)[0]  # within the margin
    ok, reason = decide(score(1, n=50), score(10), "fid", 0.0)
    assert not ok and "not comparable" in reason and "n" in reason
    assert decide(score(9, reference="x"), score(1, reference="x"), "kid_mean", 0.0) == (
        False, "kid_mean 0.0900 does not beat champion's 0.0100 by margin 0.0: not promoted")


def test_judge_without_rescorer_keeps_the_old_refusal() -> None:
    verdict = judge(score(1, reference="dv2"), "3", score(10), metric="fid", margin=0.0)
    assert not verdict.promoted and verdict.basis == "incomparable" and "differs in reference" in verdict.reason


def test_judge_rejects_a_rescore_that_is_not_on_the_candidates_terms() -> None:
    """A rescorer returning a score on other terms (wrong N) cannot promote: the pair is still incomparable."""
    verdict = judge(score(1, reference="dv2"), "3", score(10), metric="fid", margin=0.0,
                    rescore=lambda v: score(20, n=50, reference="dv2"))
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

    verdict = judge(score(1, reference="dv2"), "3", score(10), metric="fid", margin=0.0, rescore=boom,
                    on_unusable=policy)  # type: ignore[arg-type]
    assert verdict.promoted is (policy == "promote") and verdict.basis == "champion-unusable"
    assert verdict.reason.startswith("champion unusable: RuntimeError: no checkpoint;") and "second line" not in verdict.reason
