"""Fréchet distance math: closed-form Gaussian cases, singular covariances, agreement with sqrtm and torchmetrics."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from canvascraft.evaluation import EvaluationInputError, frechet
from canvascraft.evaluation.frechet import frechet_distance, gaussian_stats, trace_sqrt_product


def _spd(rng: np.random.Generator, d: int, scale: float = 1.0) -> np.ndarray:
    """A random symmetric positive definite matrix."""
    a = rng.standard_normal((d, d)) * scale
    return a @ a.T / d + np.eye(d) * 1e-2


def _sqrtm_fid(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """The textbook route (pytorch-fid): real part of tr(sqrtm(S1 S2))."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def test_equal_covariances_give_squared_mean_distance() -> None:
    rng = np.random.default_rng(0)
    sigma = _spd(rng, 32)
    mu1, mu2 = rng.standard_normal(32), rng.standard_normal(32)
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(
        float(np.sum((mu1 - mu2) ** 2)), rel=1e-10, abs=1e-9
    )


def test_commuting_diagonal_covariances_closed_form() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.1, 4.0, 50), rng.uniform(0.1, 4.0, 50)
    mu1, mu2 = rng.standard_normal(50), rng.standard_normal(50)
    expected = float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_identical_statistics_give_zero_even_when_singular() -> None:
    rng = np.random.default_rng(2)
    features = rng.standard_normal((20, 64))  # N < d: singular covariance (rank 19)
    mu, sigma = gaussian_stats(features)
    assert np.linalg.matrix_rank(sigma) < 64
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)
    full_mu, full_sigma = mu, _spd(rng, 64)
    assert frechet_distance(full_mu, full_sigma, full_mu, full_sigma) == pytest.approx(0.0, abs=1e-9)


def test_matches_sqrtm_on_positive_definite_covariances() -> None:
    rng = np.random.default_rng(3)
    s1, s2 = _spd(rng, 128), _spd(rng, 128, scale=2.0)
    mu1, mu2 = rng.standard_normal(128), rng.standard_normal(128)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_sqrtm_fid(mu1, s1, mu2, s2), rel=1e-9)


def test_singular_covariances_match_the_data_identity() -> None:
    """Both covariances singular (N < d): tr sqrt(S1 S2) equals the nuclear norm of X1c X2c^T / sqrt((n1-1)(n2-1))."""
    rng = np.random.default_rng(4)
    x1, x2 = rng.standard_normal((30, 100)), rng.standard_normal((25, 100)) * 1.5 + 0.3
    (mu1, s1), (mu2, s2) = gaussian_stats(x1), gaussian_stats(x2)
    c1, c2 = x1 - mu1, x2 - mu2
    nuclear = np.linalg.svd(c1 @ c2.T, compute_uv=False).sum() / np.sqrt((len(x1) - 1) * (len(x2) - 1))
    assert trace_sqrt_product(s1, s2) == pytest.approx(nuclear, rel=1e-9)
    assert trace_sqrt_product(s2, s1) == pytest.approx(nuclear, rel=1e-9)
    expected = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * nuclear)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_psd_factor_reconstructs_and_reveals_rank() -> None:
    rng = np.random.default_rng(8)
    _, singular = gaussian_stats(rng.standard_normal((12, 30)))
    factor = frechet.psd_factor(singular)
    assert factor.shape == (30, 11)
    np.testing.assert_allclose(factor @ factor.T, singular, atol=1e-12)
    definite = _spd(rng, 30)
    assert frechet.psd_factor(definite).shape == (30, 30)
    assert trace_sqrt_product(np.zeros((3, 3)), np.eye(3)) == 0.0


def test_one_singular_one_definite() -> None:
    rng = np.random.default_rng(5)
    mu1, s1 = gaussian_stats(rng.standard_normal((10, 40)))  # singular: factored, M is 9 x 9
    mu2, s2 = rng.standard_normal(40), _spd(rng, 40)
    expected = _sqrtm_fid(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-7)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-7)


def test_agrees_with_torchmetrics_compute_fid() -> None:
    from torchmetrics.image.fid import _compute_fid

    rng = np.random.default_rng(6)
    (mu1, s1), (mu2, s2) = (
        gaussian_stats(rng.standard_normal((300, 64))),
        gaussian_stats(rng.gamma(2.0, size=(300, 64))),
    )
    reference = float(_compute_fid(*(torch.from_numpy(a) for a in (mu1, s1, mu2, s2))))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-9)


def test_one_dimensional_case() -> None:
    # pytorch-fid's 1x1 case breaks on SciPy 1.17 (sqrtm(..., disp=False)); the closed form is (m1-m2)^2 + (s1-s2)^2.
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)


def test_gaussian_stats_is_float64_two_pass_and_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    features = (rng.standard_normal((1000, 16)) + 1e4).astype(np.float32)  # large offset: one-pass would cancel
    monkeypatch.setattr(frechet, "_CHUNK_ROWS", 97)
    mu, sigma = gaussian_stats(features)
    as64 = features.astype(np.float64)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(mu, as64.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(sigma, np.cov(as64, rowvar=False), rtol=1e-9, atol=1e-9)
    assert np.array_equal(sigma, sigma.T)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((np.zeros(3), np.eye(3), np.zeros(4), np.eye(4)), "mu2"),
        ((np.zeros(3), np.eye(4), np.zeros(3), np.eye(3)), "sigma1"),
        ((np.zeros((3, 1)), np.eye(3), np.zeros(3), np.eye(3)), "mu1"),
        ((np.zeros(3), np.eye(3), np.array([0.0, np.nan, 0.0]), np.eye(3)), "mu2/sigma2"),
    ],
)
def test_bad_statistics_name_the_argument(args: tuple[np.ndarray, ...], field: str) -> None:
    with pytest.raises(EvaluationInputError, match=field):
        frechet_distance(*args)


def test_gaussian_stats_rejects_single_sample_and_wrong_rank() -> None:
    with pytest.raises(EvaluationInputError, match="at least 2 samples"):
        gaussian_stats(np.zeros((1, 8)))
    with pytest.raises(EvaluationInputError, match="2-D"):
        gaussian_stats(np.zeros(8))
