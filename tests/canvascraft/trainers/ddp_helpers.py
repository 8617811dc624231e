"""Two-process gloo runs for the data-parallel tests (a plain module: spawned children import it by name)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from canvascraft.trainers.base import TrainConfig, Trainer


class LinearTrainer(Trainer):
    """Least squares on flattened images with plain SGD: no noise anywhere, so ranks can be compared exactly."""

    name = "linear-test"

    def _build(self, config: TrainConfig) -> None:
        size = config.channels * config.sample_size**2
        self.net = torch.nn.Linear(size, 1).to(self.device)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=0.05, momentum=0.9)
        self.target = torch.linspace(-1, 1, size)  # a fixed linear target function of the pixels
        self.batch_sizes: list[int] = []

    def _train_step(self, batches: list[torch.Tensor]) -> dict[str, float]:
        (x,) = batches
        self.batch_sizes.append(len(x))
        flat = x.flatten(1)
        loss = F.mse_loss(self.net(flat).squeeze(1), flat @ self.target)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss": float(loss.detach())}

    def _save_weights(self, directory: Path) -> None:
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, str(directory / "net.safetensors"))

    def _load_weights(self, directory: Path) -> None:
        self.net.load_state_dict(load_file(str(directory / "net.safetensors")))

    def _training_state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict()}

    def _load_training_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])

    def sample(self, n: int, seed: int, *, inference_steps: int | None = None) -> torch.Tensor:
        raise NotImplementedError


def images(n: int = 64, size: int = 8, seed: int = 0) -> torch.Tensor:
    """``n`` single-channel images in [-1, 1] drawn from a fixed seed (the same tensor in every process)."""
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def run_ranks(fn: Any, world_size: int, folder: Path, *args: Any) -> None:
    """Run ``fn(rank, world_size, folder, *args)`` in ``world_size`` processes joined by a gloo process group."""
    import torch.multiprocessing as mp

    mp.spawn(_rank_main, args=(world_size, folder, fn, args), nprocs=world_size, join=True)


def _rank_main(rank: int, world_size: int, folder: Path, fn: Any, args: tuple[Any, ...]) -> None:
    torch.set_num_threads(1)
    os.environ.setdefault("TQDM_DISABLE", "1")
    dist.init_process_group("gloo", init_method=f"file://{folder / 'rendezvous'}", rank=rank, world_size=world_size)
    try:
        fn(rank, world_size, folder, *args)
    finally:
        dist.destroy_process_group()


def linear_ranks(rank: int, world_size: int, folder: Path, config: dict[str, Any], stop_at: int) -> None:
    """Train to ``stop_at``, checkpointing under ``folder/ckpt``; then a fresh trainer resumes from the checkpoint
    at ``stop_at`` and trains to ``config['steps']``. Saves parameters, losses and batch sizes per rank."""
    from canvascraft.trainers.distributed import distributed_class

    cls = distributed_class(LinearTrainer, ("net",))
    data = images()
    first = cls({**config, "steps": stop_at}, device="cpu")
    head = first.train(None, data, checkpoint_root=folder / "ckpt")
    resumed = cls(device="cpu")
    resumed.load_checkpoint(folder / "ckpt" / f"step_{stop_at:08d}")
    tail = resumed.train({**config}, data)
    torch.save(
        {
            "params": {k: v.clone() for k, v in resumed.net.state_dict().items()},
            "losses": head.losses + tail.losses,
            "batch_sizes": first.batch_sizes + resumed.batch_sizes,
            "images_per_step": head.images_per_sec * head.step_time,
        },
        folder / f"rank{rank}.pt",
    )


def ddpm_ranks(rank: int, world_size: int, folder: Path, config: dict[str, Any]) -> None:
    """A tiny DDPM trained data-parallel; saves each rank's UNet, EMA weights and per-step losses."""
    from canvascraft.trainers import DDPMTrainer
    from canvascraft.trainers.distributed import distributed_class

    trainer = distributed_class(DDPMTrainer)(config, device="cpu")
    result = trainer.train(None, images(size=config["sample_size"]), checkpoint_root=folder / "ckpt")
    torch.save(
        {
            "unet": {k: v.clone() for k, v in trainer.unet.state_dict().items()},
            "ema": [p.clone() for p in trainer.ema.shadow_params],
            "losses": result.losses,
        },
        folder / f"rank{rank}.pt",
    )


def both_ranks(
    rank: int, world_size: int, folder: Path, linear: dict[str, Any], stop_at: int, ddpm: dict[str, Any]
) -> None:
    """``linear_ranks`` under ``folder/linear`` and ``ddpm_ranks`` under ``folder/ddpm`` in the same processes."""
    for name in ("linear", "ddpm"):
        (folder / name).mkdir(exist_ok=True)
    linear_ranks(rank, world_size, folder / "linear", linear, stop_at)
    ddpm_ranks(rank, world_size, folder / "ddpm", ddpm)
