"""Training throughput: images/s reported inside a Ray Tune trial (DDPM trainer) vs a bare diffusers loop
(UNet2DModel + DDPMScheduler + AdamW, same model, batch, data and torch threads) written here."""

from __future__ import annotations

import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bench.common import REPO, Row, Sample, fresh_home, paired_ratio, timed

CPU_THREADS = 2  # the trial's cpu resource = its torch threads; the bare loop uses the same


def train_spec(source: str, steps: int, trials: int) -> dict[str, Any]:
    import yaml

    spec = yaml.safe_load((REPO / "pipelines" / "digits-quick.yaml").read_text())
    spec["name"] = "bench-train"
    spec["data"] = {"source": source, "min_valid_count": 1}
    spec["trainer"]["params"].update(steps=steps, log_every=10, warmup_steps=5)
    spec["trainer"]["search_space"] = {"learning_rate": {"type": "choice", "values": [0.0002]}}
    spec["tuner"].update(
        num_samples=trials, max_concurrent_trials=1, resources={"cpu": CPU_THREADS, "gpu": 0}, checkpoint_every=steps
    )
    spec["device"] = "cpu"
    return spec


def bare_diffusers_loop(images: torch.Tensor, params: dict[str, Any], steps: int, skip: int) -> tuple[float, float]:
    """images/s over steps after ``skip`` (step time only, as the trainer reports) and over the whole loop (wall)."""
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    widths = tuple(params["block_out_channels"])
    unet = UNet2DModel(
        sample_size=params["sample_size"],
        in_channels=params["channels"],
        out_channels=params["channels"],
        block_out_channels=widths,
        layers_per_block=2,
        down_block_types=("DownBlock2D",) * len(widths),
        up_block_types=("UpBlock2D",) * len(widths),
        add_attention=True,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=2e-4, betas=(0.95, 0.999), weight_decay=1e-6, eps=1e-8)
    batch = params["batch_size"]
    unet.train()
    times = []
    started = time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        x0 = images[torch.randint(0, len(images), (batch,))]
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (batch,))
        loss = F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, noise)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - started
    return batch * (steps - skip) / sum(times[skip:]), batch * steps / wall


def shards_for(source: str, spec: Any, root: Path) -> Any:
    from bench.ingest import seed
    from canvascraft.artifact_root import artifact_root
    from canvascraft.brushes import BrushStack
    from canvascraft.ingest import ImageRules, SnapshotManifest, ingest
    from canvascraft.preprocess import preprocess
    from canvascraft.settings import get_settings

    seed(_client(), source.split("/")[2], [int(source.rsplit("-", 1)[1])])  # idempotent
    fresh_home(root, "training")
    settings = get_settings()
    report = ingest(
        [source],
        _client(),
        settings.home / "cache",
        ImageRules.from_spec(spec.data),
        max_workers=settings.s3_max_concurrency,
    )
    return report, preprocess(
        SnapshotManifest.load(report.manifest_path),
        settings.home / "cache",
        BrushStack.from_spec(spec.brushes),
        artifact_root(settings),
        seed=spec.seed,
    )


def warm_ray(settings: Any) -> float:
    """Start (or join) Ray and wait until a task ran on every CPU, so idle-worker start-up is over; seconds taken."""
    import ray

    from canvascraft.tuning.search import connect_ray

    started = time.perf_counter()
    connect_ray(settings)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    ray.get([ray.remote(num_cpus=1)(lambda: None).remote() for _ in range(cpus)])
    return time.perf_counter() - started


def _client() -> Any:
    from canvascraft.settings import get_settings
    from canvascraft.storage import make_s3_client

    return make_s3_client(get_settings())


def trial_histories(experiment_path: str) -> list[Any]:
    import pandas as pd

    return [pd.read_csv(p) for p in sorted(Path(experiment_path).glob("*/progress.csv"))]


def run(root: Path, steps: int, trials: int, source: str = "s3://bench/digits-1000") -> tuple[list[Row], str]:
    """``trials`` one-trial searches, each bracketed by bare loops (``trials + 1`` of them): trial i is paired with
    the mean of the bare loop just before and just after it, so a machine whose speed drifts (it is shared) moves
    both sides alike."""
    from canvascraft.preprocess import load_shards
    from canvascraft.settings import get_settings
    from canvascraft.spec import load_spec
    from canvascraft.tuning.search import run_search

    specs = []
    for index in range(trials):  # a seed per trial: its own experiment (the name holds the spec hash)
        raw = train_spec(source, steps, 1)
        raw["seed"] = index
        specs.append(load_spec(raw))
    report, shards = shards_for(source, specs[0], root)
    settings = get_settings()
    # Steady state on both sides: Ray's start (it pre-starts one idle worker per CPU, each importing for seconds)
    # is paid before the searches, as a long-running cluster would have; its cost is in the orchestration section.
    ray_seconds = warm_ray(settings)
    torch.set_num_threads(CPU_THREADS)
    data = load_shards(shards)
    params = specs[0].trainer.params
    bare, bare_wall = [], []

    def bare_repeat() -> None:
        steady, wall = bare_diffusers_loop(data, params, steps, skip=10)
        bare.append(steady)
        bare_wall.append(wall)

    skip_reports = 1  # the first log window holds warm-up steps
    inside, inside_wall, search_seconds, tune_overhead = [], [], [], []
    batch = params["batch_size"]
    for spec in specs:
        bare_repeat()
        seconds, result = timed(
            partial(run_search, spec, shards, None, settings, dataset_version=report.dataset_version)
        )
        search_seconds.append(seconds)
        tune_overhead.append(result.tune_overhead_seconds)
        (history,) = trial_histories(result.experiment_path)
        inside.append(statistics.median(history["images_per_sec"].tolist()[skip_reports:]))
        inside_wall.append(batch * int(history["step"].iloc[-1]) / float(history["time_this_iter_s"].sum()))
    bare_repeat()
    bracket = [(bare[i] + bare[i + 1]) / 2 for i in range(len(inside))]
    bracket_wall = [(bare_wall[i] + bare_wall[i + 1]) / 2 for i in range(len(inside))]
    ratio, spread = paired_ratio(inside, bracket)
    wall_ratio, _ = paired_ratio(inside_wall, bracket_wall)
    shape = "x".join(str(s) for s in shards.shape)
    size = f"UNet {list(params['block_out_channels'])}, {shape}, batch {batch}, {steps} steps, {CPU_THREADS} threads"
    rows = [
        Row(
            "training images/s (step time)",
            size,
            "images/s",
            Sample(inside),
            Sample(bare),
            "bare diffusers loop",
            ratio,
            spread,
            target=">= 0.95",
            note="CanvasCraft: median of the trial's reported images_per_sec windows (first window = warm-up "
            "dropped), one value per trial; includes EMA update, grad clipping and LR schedule per step",
        ),
        Row(
            "training images/s (trial wall incl. reporting, checkpoint)",
            size,
            "images/s",
            Sample(inside_wall),
            Sample(bare_wall),
            "bare diffusers loop, whole loop",
            wall_ratio,
            None,
            digits=1,
            note="sum of Tune's time_this_iter_s per trial (includes the final checkpoint write)",
        ),
    ]
    text = (
        f"{len(inside)} one-trial searches, each between two bare loops (ratio = median over trials of "
        f"trial / mean of its two bare neighbours; spread = min-max of those). Search wall time "
        f"{Sample(search_seconds).fmt(1)} s per one-trial search (trial actor, checkpoint, experiment state "
        f"included; Ray started before them in {ray_seconds:.1f} s); Tune overhead upper bound "
        f"{Sample(tune_overhead).fmt(1)} s per search."
    )
    return rows, text
