"""Classifier score: does a labelled dataset's own classifier recognise the generated images, and how many classes?

FID says how far two feature distributions are; at 8-16 px and N=200 it moves little between noise and a model
that draws recognisable digits. This score asks the question a user asks of a sample grid. A small classifier
(multinomial logistic regression on ``size x size`` grayscale pixels, scikit-learn) is fitted on the brushed
training set with a seeded held-out split (its accuracy is recorded, so a weak classifier is visible), then reads
the samples: the **mean top-class probability** (higher is better; real held-out digits score ~0.9, uniform noise
~0.57) and the **coverage**, the number of classes drawn confidently (top probability >= ``confident``), which
catches mode collapse. It is the Inception Score's idea (Salimans et al. 2016, "confident and diverse") with the
dataset's own labels instead of ImageNet's, so it applies to 1-channel 8 px digits.

Like FID, the score is comparable only on the same terms: same classifier (training set, size, seed), same
threshold and the same number of samples (``ClassifierScore.comparability_key``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from canvascraft.evaluation import EvaluationInputError
from canvascraft.evaluation.score_records import ClassifierScore
from canvascraft.hashing import stable_hash

MIN_PER_CLASS = 2  # a class needs one training and one held-out image


class ImageClassifier:
    """Logistic regression over ``size x size`` grayscale pixels of uint8 N x C x H x W images."""

    def __init__(self, model: Any, classes: list[str], size: int, accuracy: float, identity: str) -> None:
        self.model, self.classes, self.size, self.accuracy, self.identity = model, classes, size, accuracy, identity

    @staticmethod
    def features(images: torch.Tensor, size: int) -> np.ndarray:
        """Grayscale, area-downsampled to ``size x size``, in [0, 1], flattened: N x size^2 float64."""
        if images.ndim != 4 or images.dtype != torch.uint8:
            raise EvaluationInputError(
                "images", f"got {images.dtype} of shape {tuple(images.shape)}", "uint8 N x C x H x W"
            )
        gray = images.float().mean(dim=1, keepdim=True) / 255.0
        if gray.shape[-1] != size or gray.shape[-2] != size:
            gray = F.interpolate(gray, size=(size, size), mode="area")  # box filter: each output pixel a block mean
        return gray.flatten(1).numpy().astype(np.float64)

    @classmethod
    def fit(
        cls,
        images: torch.Tensor,
        labels: Sequence[str | None],
        *,
        size: int = 8,
        seed: int = 0,
        holdout: float = 0.2,
        reference: str = "",
    ) -> ImageClassifier:
        """Fit on a seeded (1 - holdout) split of labelled images; the held-out accuracy is kept."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split

        if len(labels) != len(images):
            raise EvaluationInputError(
                "labels", f"{len(labels)} labels for {len(images)} images", "one label per image"
            )
        missing = sum(1 for label in labels if not label)
        if missing:
            raise EvaluationInputError(
                "evaluator.classifier_score",
                f"{missing} of {len(labels)} training images have no label",
                "a labelled dataset (labels.csv beside the images, or class sub-folders) or classifier_score: false",
            )
        names, counts = np.unique(np.asarray(labels, dtype=str), return_counts=True)
        if len(names) < 2 or counts.min() < MIN_PER_CLASS:
            raise EvaluationInputError(
                "evaluator.classifier_score",
                f"labels {dict(zip(names.tolist(), counts.tolist(), strict=True))}",
                f">= 2 classes with >= {MIN_PER_CLASS} images each",
            )
        x, y = cls.features(images, size), np.asarray(labels, dtype=str)
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=holdout, random_state=seed, stratify=y)
        model = LogisticRegression(max_iter=2000)  # lbfgs: deterministic for the same data on any worker
        model.fit(x_train, y_train)
        accuracy = float(model.score(x_test, y_test))
        identity = stable_hash(
            {
                "reference": reference,
                "size": size,
                "seed": seed,
                "holdout": holdout,
                "classes": names.tolist(),
                "model": "logistic-regression",
            },
            length=16,
        )
        return cls(model, [str(c) for c in model.classes_], size, accuracy, identity)

    def probabilities(self, images: torch.Tensor) -> np.ndarray:
        """N x classes p(y|x), columns in ``self.classes`` order."""
        return self.model.predict_proba(self.features(images, self.size))

    def score(self, images: torch.Tensor, *, confident: float = 0.8) -> ClassifierScore:
        """Mean top-class probability and confident class coverage of ``images``."""
        if len(images) < 1:
            raise EvaluationInputError("images", "got 0 images", ">= 1 generated image")
        p = self.probabilities(images)
        top, predicted = p.max(axis=1), p.argmax(axis=1)
        confident_classes = predicted[top >= confident]
        counts = {self.classes[i]: int((confident_classes == i).sum()) for i in sorted(set(confident_classes.tolist()))}
        return ClassifierScore(
            mean_top_probability=float(top.mean()),
            coverage=len(counts),
            num_classes=len(self.classes),
            confident=confident,
            n=len(images),
            classifier_accuracy=self.accuracy,
            classifier=self.identity,
            class_counts=counts,
        )
