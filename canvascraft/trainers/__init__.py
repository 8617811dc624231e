"""Trainers: registry, contract and the built-in DDPM and DCGAN strategies (imported here to register them)."""

from canvascraft.trainers import dcgan, ddpm  # noqa: F401  (registration side effect)
from canvascraft.trainers.base import (
    TRAINER_ENTRY_POINT_GROUP,
    TRAINERS,
    Reporter,
    TrainConfig,
    Trainer,
    TrainResult,
    build_trainer,
    load_trainer,
)
from canvascraft.trainers.checkpoint import CheckpointError
from canvascraft.trainers.data import TrainingDataError
from canvascraft.trainers.dcgan import DCGANConfig, DCGANTrainer
from canvascraft.trainers.ddpm import DDPMConfig, DDPMTrainer

__all__ = [
    "TRAINERS",
    "TRAINER_ENTRY_POINT_GROUP",
    "CheckpointError",
    "DCGANConfig",
    "DCGANTrainer",
    "DDPMConfig",
    "DDPMTrainer",
    "Reporter",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDataError",
    "build_trainer",
    "load_trainer",
]
