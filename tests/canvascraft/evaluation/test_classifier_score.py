"""The classifier score on real digits, noise and a one-class generator; fit errors name the field."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from canvascraft.evaluation import EvaluationInputError
from canvascraft.evaluation.classifier_score import ClassifierScore, ImageClassifier


def digits() -> tuple[torch.Tensor, list[str]]:
    """scikit-learn's 8x8 digits as uint8 N x 1 x 8 x 8 and their labels (the demo's data, before brushes)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(np.round(bunch.images * 255 / 16), dtype=torch.uint8)[:, None]
    return images, [str(int(t)) for t in bunch.target]


@pytest.fixture(scope="module")
def fitted() -> tuple[ImageClassifier, torch.Tensor, list[str]]:
    images, labels = digits()
    return ImageClassifier.fit(images[:1400], labels[:1400], seed=0, reference="digits"), images, labels


def test_real_digits_score_high_and_cover_every_class(fitted) -> None:
    classifier, images, _ = fitted
    score = classifier.score(images[1400:])  # images it never saw
    assert classifier.accuracy > 0.9
    assert score.mean_top_probability > 0.85 and score.coverage == 10 and score.num_classes == 10
    assert sum(score.class_counts.values()) <= len(images) - 1400


def test_noise_scores_low(fitted) -> None:
    classifier, images, _ = fitted
    noise = torch.randint(0, 256, (300, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    real, fake = classifier.score(images[1400:1700]), classifier.score(noise)
    assert fake.mean_top_probability < real.mean_top_probability - 0.2
    assert fake.coverage < 5


def test_one_class_output_covers_one_class(fitted) -> None:
    """A collapsed generator drawing only sevens: confident, but coverage 1 exposes it."""
    classifier, images, labels = fitted
    sevens = images[1400:][[i for i, label in enumerate(labels[1400:]) if label == "7"]]
    score = classifier.score(sevens.repeat(5, 1, 1, 1)[:100])
    assert score.coverage == 1 and set(score.class_counts) == {"7"}


def test_scores_any_resolution_and_rgb(fitted) -> None:
    """Upscaled RGB copies of the same digits are read through the same 8x8 grayscale features."""
    classifier, images, _ = fitted
    rgb16 = images[1400:1600].repeat_interleave(2, dim=2).repeat_interleave(2, dim=3).repeat(1, 3, 1, 1)
    assert classifier.score(rgb16).mean_top_probability == pytest.approx(
        classifier.score(images[1400:1600]).mean_top_probability, abs=1e-9
    )


def test_fit_is_reproducible_and_keyed_by_what_it_was_fitted_on() -> None:
    images, labels = digits()
    a = ImageClassifier.fit(images[:600], labels[:600], seed=1, reference="r")
    b = ImageClassifier.fit(images[:600], labels[:600], seed=1, reference="r")
    assert a.identity == b.identity and np.array_equal(
        a.probabilities(images[600:700]), b.probabilities(images[600:700])
    )
    assert ImageClassifier.fit(images[:600], labels[:600], seed=2, reference="r").identity != a.identity
    assert ImageClassifier.fit(images[:600], labels[:600], seed=1, reference="other").identity != a.identity


def test_unlabelled_training_set_is_a_clear_error() -> None:
    images, labels = digits()
    with pytest.raises(
        EvaluationInputError, match=r"evaluator.classifier_score: 3 of 100 training images have no label"
    ):
        ImageClassifier.fit(images[:100], [None, "", None, *labels[3:100]])
    with pytest.raises(EvaluationInputError, match=r">= 2 classes"):
        ImageClassifier.fit(images[:10], ["1"] * 10)


def test_score_comparability_key() -> None:
    base = {
        "mean_top_probability": 0.9,
        "coverage": 9,
        "num_classes": 10,
        "confident": 0.8,
        "n": 200,
        "classifier_accuracy": 0.95,
        "classifier": "abc",
    }
    assert ClassifierScore(**base).comparability_key() == ClassifierScore(**{**base, "coverage": 3}).comparability_key()
    for change in ({"n": 100}, {"confident": 0.5}, {"classifier": "def"}):
        assert ClassifierScore(**{**base, **change}).comparability_key() != ClassifierScore(**base).comparability_key()
