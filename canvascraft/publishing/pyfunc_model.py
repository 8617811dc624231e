"""The registered model: an MLflow pyfunc whose ``predict({"n", "seed"[, "inference_steps"]})`` returns images.

The artifact is the trainer checkpoint folder (DDPM: diffusers ``save_pretrained`` UNet + scheduler config;
DCGAN: generator safetensors), loaded with ``canvascraft.trainers.load_trainer``.
"""

from __future__ import annotations

import warnings
from typing import Any

from mlflow.pyfunc import PythonModel

_HINT_NOTICE = "Add type hints to the `predict` method"
_show_warning = warnings.showwarning


def _without_hint_notice(message, category, filename, lineno, file=None, line=None):
    """Show every warning but MLflow's request for predict() type hints (see the class below)."""
    if _HINT_NOTICE not in str(message):
        _show_warning(message, category, filename, lineno, file, line)


# MLflow asks for type hints on predict() when the class is created (PythonModel.__init_subclass__, under its own
# `simplefilter("once")`, so a warnings filter cannot hide it). The input here is a small dict ({"n", "seed",
# "inference_steps"}) documented on predict(); hints would make MLflow validate it against a schema it cannot express.
warnings.showwarning = _without_hint_notice


class GeneratorModel(PythonModel):
    """Generate ``n`` images for a ``seed``: uint8 array N x H x W x C."""

    def load_context(self, context: Any) -> None:
        """Load the trainer from the logged checkpoint folder (CPU unless a GPU is present)."""
        from canvascraft.trainers import load_trainer

        self.trainer = load_trainer(context.artifacts["checkpoint"], device="auto")

    def predict(self, context, model_input, params=None):
        """``{"n": int, "seed": int, "inference_steps": int (optional)}`` (dict or one-row DataFrame) -> uint8 NHWC."""
        if hasattr(model_input, "to_dict"):
            model_input = {k: v[0] for k, v in model_input.to_dict(orient="list").items()}
        n, seed = int(model_input.get("n", 16)), int(model_input.get("seed", 0))
        steps = model_input.get("inference_steps")
        images = self.trainer.sample(n, seed, inference_steps=int(steps) if steps is not None else None)
        return images.permute(0, 2, 3, 1).numpy()


warnings.showwarning = _show_warning  # only the class creation above was filtered
