"""Multi-worker trials: a 2-worker DDP trial (Ray Train inside Tune, gloo on CPU) against a 1-worker trial of the
same spec, in the same run: images/s, and how closely the loss curves agree.

Both sides use the demo's DDPM (digits 8x8) with the same global batch, data order and initialisation, and one CPU
(one torch thread) per worker, so the throughput ratio is the scaling of DDP (2.0 would be perfect on two idle
cores). One trial with two threads is not the baseline: on a loaded machine its intra-op barriers wait for the
slowest thread (in one run here 23 images/s against 60-250 for two one-thread workers), which says nothing about
DDP. The DDP ranks
draw their own noise (canvascraft/trainers/distributed.py), so the curves agree in expectation, not bitwise; the
tolerance is what a different seed does to a 1-worker curve, measured in the same run.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench.common import Row, Sample, paired_ratio, timed
from bench.training import shards_for, train_spec, trial_histories, warm_ray


def ddp_spec(source: str, steps: int, workers: int, seed: int) -> dict[str, Any]:
    """The training bench's spec (demo DDPM) as one trial of ``workers`` workers of one CPU each."""
    spec = train_spec(source, steps, 1)
    spec["seed"] = seed
    spec["tuner"].update(resources={"cpu": 1, "gpu": 0}, workers_per_trial=workers)
    return spec


def curve(history: Any) -> list[float]:
    """The trial's reported loss per ``log_every`` window, in step order."""
    return [float(v) for v in history.sort_values("step")["loss"]]


def max_relative_difference(a: list[float], b: list[float]) -> float:
    """Largest |a - b| / b over the windows both curves have."""
    return max(abs(x - y) / abs(y) for x, y in zip(a, b, strict=False) if y)


def run(root: Path, steps: int, repeats: int, source: str = "s3://bench/digits-1000") -> tuple[list[Row], str]:
    """``repeats`` rounds of (1-worker trial, 2-worker trial) with the round's seed; throughput paired per round."""
    from canvascraft.settings import get_settings
    from canvascraft.spec import load_spec
    from canvascraft.tuning.search import run_search

    rounds = [{w: load_spec(ddp_spec(source, steps, w, seed)) for w in (1, 2)} for seed in range(repeats)]
    report, shards = shards_for(source, rounds[0][1], root)
    settings = get_settings()
    ray_seconds = warm_ray(settings)
    speed: dict[int, list[float]] = {1: [], 2: []}
    walls: dict[int, list[float]] = {1: [], 2: []}
    curves: dict[int, list[list[float]]] = {1: [], 2: []}
    for specs in rounds:
        for workers, spec in specs.items():
            seconds, result = timed(
                lambda spec=spec: run_search(spec, shards, None, settings, dataset_version=report.dataset_version)
            )
            (history,) = trial_histories(result.experiment_path)
            speed[workers].append(statistics.median(history["images_per_sec"].tolist()[1:]))  # window 1: warm-up
            walls[workers].append(seconds)
            curves[workers].append(curve(history))
    ratio, spread = paired_ratio(speed[2], speed[1])
    ddp_gap = [max_relative_difference(c2, c1) for c1, c2 in zip(curves[1], curves[2], strict=True)]
    seed_gap = [max_relative_difference(curves[1][i + 1], curves[1][i]) for i in range(len(curves[1]) - 1)]
    params = rounds[0][1].trainer.params
    size = (
        f"DDPM {list(params['block_out_channels'])}, {'x'.join(map(str, shards.shape))}, global batch "
        f"{params['batch_size']}, {steps} steps, 1 thread per worker"
    )
    gap_ratio = statistics.median(ddp_gap) / statistics.median(seed_gap) if seed_gap else None
    rows = [
        Row(
            "trial images/s, 2 workers (DDP, gloo) vs 1",
            size,
            "images/s",
            Sample(speed[2]),
            Sample(speed[1]),
            "1-worker trial",
            ratio,
            spread,
            ratio_label="2 workers / 1 worker",
            note="median of the trial's reported images_per_sec windows (first = warm-up dropped); each of the 2 "
            "workers trains on half the global batch; 2.0 would be perfect scaling on 2 idle cores",
        ),
        Row(
            "loss curve max relative difference",
            size,
            "fraction",
            Sample(ddp_gap),
            Sample(seed_gap) if seed_gap else None,
            "1-worker trials, seed i vs seed i+1",
            gap_ratio,
            None,
            ratio_label="DDP gap / seed gap",
            target="<= 1.0" if gap_ratio is not None else "",
            digits=3,
            note=f"per-window (log_every={params['log_every']}) mean loss; DDP vs 1-worker with the same seed, "
            "against two 1-worker seeds",
        ),
    ]
    text = (
        f"{repeats} rounds, each a one-trial search with 1 worker then with 2 workers (seed = round). Search wall "
        f"time per trial: 1 worker {Sample(walls[1]).fmt(1)} s, 2 workers {Sample(walls[2]).fmt(1)} s (Ray Train "
        f"worker group start-up included; Ray started before them in {ray_seconds:.1f} s). Curves (window means), "
        f"round 0: 1 worker {[round(v, 4) for v in curves[1][0]]}; 2 workers {[round(v, 4) for v in curves[2][0]]}."
        " The machine is shared with other jobs: compare the ratios, not the absolute figures."
    )
    return rows, text
