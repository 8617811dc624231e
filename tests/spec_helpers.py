"""Small real specs the flow tests share (a DCGAN that trains in seconds on 8x8 digits)."""

from __future__ import annotations

from typing import Any


def tiny_dcgan_spec(name: str, source: str, registered_model: str) -> dict[str, Any]:
    """2 trials of a 6-step 8x8 DCGAN on ``source`` (>= 50 images), FID on 32 samples, published to the model."""
    return {
        "name": name,
        "seed": 1,
        "data": {"source": source, "min_valid_count": 50},
        "brushes": [{"name": "resize", "params": {"size": 8}}, {"name": "grayscale"}, {"name": "normalize"}],
        "features": {"palettes": [{"name": "image_stats"}], "image_size": 8},
        "trainer": {
            "name": "dcgan",
            "params": {
                "sample_size": 8,
                "channels": 1,
                "latent_dim": 8,
                "g_features": 8,
                "d_features": 8,
                "steps": 6,
                "batch_size": 16,
                "log_every": 2,
            },
            "search_space": {"learning_rate_g": {"type": "choice", "values": [0.0002, 0.001]}},
        },
        "tuner": {"num_samples": 2, "metric": "loss_g", "mode": "min", "checkpoint_every": 3},
        "evaluator": {"dims": 64, "num_samples": 32, "sampling_steps": 1},
        "publish": {"registered_model": registered_model, "tag": "candidate"},
    }
