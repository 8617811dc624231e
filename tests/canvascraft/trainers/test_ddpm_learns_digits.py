"""A tiny DDPM run on the demo's data learns to draw digits: it beats noise on the classifier score.

Scored as the evaluator does (``ImageClassifier`` fitted on the training digits, samples read at 8x8). The noise
anchors are measured in the same test: uniform noise and the same model before any training step.
"""

from __future__ import annotations

import numpy as np
import torch

from canvascraft.evaluation.classifier_score import ImageClassifier
from canvascraft.trainers import build_trainer
from canvascraft.trainers.base import to_uint8


def test_six_hundred_steps_clearly_beat_noise() -> None:
    from sklearn.datasets import load_digits

    torch.set_num_threads(1)  # one core, as one Ray trial of the quick profile
    bunch = load_digits()
    images = torch.tensor(np.round(bunch.images * 255 / 16), dtype=torch.uint8)[:, None]
    labels = [str(int(t)) for t in bunch.target]
    classifier = ImageClassifier.fit(images, labels, seed=0, reference="sklearn-digits")
    data = images.float() / 127.5 - 1.0  # the normalize brush's [-1, 1]
    params = {
        "sample_size": 8,
        "channels": 1,
        "block_out_channels": [32, 64],
        "layers_per_block": 1,
        "beta_schedule": "squaredcos_cap_v2",
        "steps": 600,
        "batch_size": 64,
        "warmup_steps": 20,
        "learning_rate": 0.003,
        "seed": 0,
    }
    trainer = build_trainer("ddpm", params, device="cpu")
    untrained = classifier.score(trainer.sample(200, seed=0, inference_steps=10))
    noise = classifier.score(
        torch.randint(0, 256, (200, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    )
    trainer.train(None, data)
    trained = classifier.score(trainer.sample(200, seed=0, inference_steps=10))
    anchor = max(noise.mean_top_probability, untrained.mean_top_probability)
    assert trained.mean_top_probability > anchor + 0.04, (trained, noise, untrained)
    assert trained.coverage >= 8 > max(noise.coverage, untrained.coverage), (trained, noise, untrained)
    assert classifier.score(to_uint8(data[:200])).mean_top_probability > trained.mean_top_probability  # real > model
