"""Real datasets that install with no download, written to S3 as PNG objects plus a labels manifest."""

from canvascraft.datasets.seed import (
    DATASETS,
    load_dataset,
    seed_dataset,
    seed_from_dir,
)

__all__ = ["DATASETS", "load_dataset", "seed_dataset", "seed_from_dir"]
