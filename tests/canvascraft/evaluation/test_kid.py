"""KID: unbiased near 0 for one distribution, same estimator as torch-fidelity, seeded and size-capped subsets."""

from __future__ import annotations

import numpy as np
import pytest

from canvascraft.evaluation import EvaluationInputError
from canvascraft.evaluation.kid import kernel_inception_distance


def test_kid_near_zero_for_identical_distributions_and_positive_when_shifted() -> None:
    rng = np.random.default_rng(0)
    real, same = rng.standard_normal((200, 64)), rng.standard_normal((200, 64))
    shifted = rng.standard_normal((200, 64)) + 0.5
    null = kernel_inception_distance(real, same, subsets=20, subset_size=100)
    alt = kernel_inception_distance(real, shifted, subsets=20, subset_size=100)
    assert abs(null.mean) < 3 * null.std + 1e-3
    assert alt.mean > 10 * max(abs(null.mean), null.std)


def test_identical_sets_give_zero_up_to_the_unbiased_estimator() -> None:
    rng = np.random.default_rng(1)
    features = rng.standard_normal((100, 32))
    result = kernel_inception_distance(features, features, subsets=5, subset_size=None, seed=3)
    # Whole set each time: K_XX = K_YY = K_XY, so MMD_u^2 = 2 (S - tr)/(m(m-1)) - 2 S/m^2, tiny but not 0.
    k = (features @ features.T / 32 + 1) ** 3
    m = len(features)
    expected = 2 * (k.sum() - np.trace(k)) / (m * (m - 1)) - 2 * k.sum() / m**2
    assert result.mean == pytest.approx(expected, rel=1e-10)
    assert result.std == pytest.approx(0.0, abs=1e-12)


def test_matches_torch_fidelity_mmd_on_full_sets() -> None:
    from torch_fidelity.metric_kid import kernel_mmd

    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((80, 16)), rng.gamma(2.0, size=(60, 16))
    ours = kernel_inception_distance(a[:60], b, subsets=1, subset_size=None)
    theirs = kernel_mmd(
        a[:60], b, kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1
    )
    assert ours.mean == pytest.approx(float(theirs), rel=1e-10)


def test_seeded_and_subset_size_capped() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((50, 8)), rng.standard_normal((40, 8))
    first = kernel_inception_distance(a, b, subsets=10, seed=7)
    assert first == kernel_inception_distance(a, b, subsets=10, seed=7)
    assert first.subset_size == 40 and first.subsets == 10
    assert kernel_inception_distance(a, b, subsets=10, seed=8) != first


def test_bad_inputs_name_the_argument() -> None:
    with pytest.raises(EvaluationInputError, match="features_fake"):
        kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(EvaluationInputError, match="subsets"):
        kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 3)), subsets=0)
    with pytest.raises(EvaluationInputError, match="features_real"):
        kernel_inception_distance(np.zeros(5), np.zeros((5, 3)))
