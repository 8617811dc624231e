"""CanvasCraft core: pure, typed building blocks for generative-image training pipelines.

This package never imports Prefect; orchestration lives in ``tasks/`` and ``flows/``.
"""

__version__ = "0.1.0"
