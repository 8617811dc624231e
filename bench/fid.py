"""FID: CanvasCraft's Inception feature extraction vs torchmetrics' FrechetInceptionDistance on the same images
(both on the same local weights, never downloaded), and the Fréchet distance at 2048-d vs scipy.linalg.sqrtm."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bench.common import Row, Sample, paired_ratio, timed


def digits_uint8(n: int, size: int = 32) -> torch.Tensor:
    """scikit-learn's bundled digits as uint8 (n, 3, size, size), upscaled by pixel repetition."""
    from sklearn.datasets import load_digits

    pixels = load_digits().images[:n]
    images = np.clip(pixels * (255.0 / 16.0), 0, 255).astype(np.uint8)
    images = images.repeat(size // 8, axis=1).repeat(size // 8, axis=2)
    return torch.from_numpy(images[:, None]).expand(-1, 3, -1, -1).contiguous()


def scipy_sqrtm_fid(mu1, sigma1, mu2, sigma2) -> float:
    """pytorch-fid's formula (the usual bare route): covmean = sqrtm(S1 S2), real part, trace."""
    import scipy.linalg

    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def run(root: Path, n_images: int, dims: int, repeats: int, sqrtm_repeats: int, batch: int = 32) -> list[Row]:
    from torchmetrics.image.fid import FrechetInceptionDistance

    from canvascraft.evaluation.frechet import frechet_distance, gaussian_stats
    from canvascraft.evaluation.inception import load_feature_extractor, torch_fidelity_weights_path
    from canvascraft.evaluation.inception_weights import locate_inception_weights

    cache = root / "fid-cache"
    hub = root / "empty-hub"
    hub.mkdir(parents=True, exist_ok=True)
    weights = locate_inception_weights(cache_dir=cache, hub_dir=hub)
    extractor = load_feature_extractor(weights, cache_dir=cache, dims=dims, resize="bilinear", device="cpu")
    weights_file = str(torch_fidelity_weights_path(weights, cache))
    metric = FrechetInceptionDistance(feature=dims, feature_extractor_weights_path=weights_file, antialias=False)
    images = digits_uint8(n_images)
    extractor.extract(images[:batch], batch_size=batch)  # warm-up both (first-call allocations)
    metric.update(images[:batch], real=True)

    ours, theirs = [], []
    for _ in range(repeats):
        seconds, _ = timed(lambda: extractor.extract(images, batch_size=batch))
        ours.append(n_images / seconds)

        def torchmetrics_pass() -> None:
            metric.reset()
            for start in range(0, n_images, batch):
                metric.update(images[start : start + batch], real=True)

        seconds, _ = timed(torchmetrics_pass)
        theirs.append(n_images / seconds)
    ratio, spread = paired_ratio(ours, theirs)
    rows = [
        Row(
            "FID feature extraction",
            f"{n_images} images, {dims}-d, batch {batch}",
            "images/s",
            Sample(ours),
            Sample(theirs),
            "torchmetrics FrechetInceptionDistance.update",
            ratio,
            spread,
            target=">= 0.95",
            digits=2,
            note="same local weights, TF-style bilinear resize on both (torchmetrics antialias=False)",
        )
    ]

    # Fréchet distance at 2048-d on full-rank covariances (3000 samples > 2048 dims).
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((2048, 2048)) / 45.0
    a = (rng.standard_normal((3000, 2048)) @ mix).astype(np.float32)
    b = (rng.standard_normal((3000, 2048)) @ mix + 0.1).astype(np.float32)
    (mu1, s1), (mu2, s2) = gaussian_stats(a), gaussian_stats(b)
    ours_s = [timed(lambda: frechet_distance(mu1, s1, mu2, s2))[0] for _ in range(repeats)]
    base_s, base_value = [], None
    for _ in range(sqrtm_repeats):
        seconds, base_value = timed(lambda: scipy_sqrtm_fid(mu1, s1, mu2, s2))
        base_s.append(seconds)
    ours_value = frechet_distance(mu1, s1, mu2, s2)
    ratio = Sample(ours_s).median / Sample(base_s).median
    rows.append(
        Row(
            "Fréchet distance",
            "2048-d, full rank",
            "s",
            Sample(ours_s),
            Sample(base_s),
            "scipy.linalg.sqrtm (pytorch-fid formula)",
            ratio,
            None,
            ratio_label="time CanvasCraft / sqrtm",
            target="<= 1.0",
            digits=2,
            note=f"values: CanvasCraft {ours_value:.6f}, sqrtm {base_value:.6f} "
            f"(rel. diff {abs(ours_value - base_value) / base_value:.1e})",
        )
    )
    try:
        from torchmetrics.image.fid import _compute_fid

        t1, t2 = (torch.from_numpy(x) for x in (mu1, s1)), (torch.from_numpy(x) for x in (mu2, s2))
        (tm1, ts1), (tm2, ts2) = tuple(t1), tuple(t2)
        tm_s = [timed(lambda: _compute_fid(tm1, ts1, tm2, ts2))[0] for _ in range(repeats)]
        rows.append(
            Row(
                "Fréchet distance",
                "2048-d, full rank",
                "s",
                Sample(ours_s),
                Sample(tm_s),
                "torchmetrics _compute_fid (eigvals of S1 S2)",
                Sample(ours_s).median / Sample(tm_s).median,
                None,
                ratio_label="time CanvasCraft / torchmetrics",
                digits=2,
            )
        )
    except ImportError:
        pass
    return rows
