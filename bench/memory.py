"""Training data memory (issue 14): the peak memory of one trial as the dataset grows, and of two trials on a node.

Every trial is a fresh process (``python -m bench.memory --child ...``) doing what a Tune trial does with its data:
``trial_data`` (the streaming ``ShardReader``) or the old path (``find_shard_set`` + ``load_shards``: every shard
``torch.cat``-ed into one tensor, the baseline, measured in the same run), then a real ``DDPMTrainer`` for a few
steps. Shard sets are published with the product's own piece code (``bench.memory_data``), so no S3, ingest or
Prefect is involved.

Measured per child: peak RSS (``ru_maxrss`` from ``os.wait4`` of that child) and PSS (``/proc/<pid>/smaps_rollup``,
sampled every 0.2 s by the parent; the peak per child and of the sum over children at one instant). RSS counts a
shared page (torch's libraries, a memory-mapped shard) in every process that maps it; PSS divides it among them,
so the sum of PSS is what a node holds. The page cache holding the shard files (once per node) is in neither.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, Row, Sample
from bench.memory_data import SIZE, datasets, publish

MIB = 1024 * 1024
TRAINER = {
    "sample_size": SIZE,
    "channels": 1,
    "block_out_channels": (16, 32),
    "layers_per_block": 1,
    "batch_size": 64,
    "learning_rate": 1e-3,
    "warmup_steps": 1,
    "seed": 0,
    "log_every": 1000,
}
MODES = {
    "stream": "streaming ShardReader (pread)",
    "mmap": "ShardReader read='mmap' (safe_open)",
    "load-all": "old path: load_shards (torch.cat of every shard)",
}


# -- one trial (the child process) ---------------------------------------------------------------------------------
def _status() -> dict[str, float]:
    values: dict[str, float] = {}
    for path, fields in (
        ("/proc/self/status", ("VmRSS", "RssAnon", "RssFile")),
        ("/proc/self/smaps_rollup", ("Pss", "Pss_Anon", "Pss_File")),
    ):
        for line in Path(path).read_text().splitlines():
            key = line.split(":")[0]
            if key in fields:
                values[key] = int(line.split()[1]) * 1024 / MIB
    return values


def child(mode: str, key: str, steps: int, barrier: str | None) -> None:
    """One trial: its data by ``mode``, then ``steps`` of the DDPM trainer; prints its memory as one JSON line."""
    import torch

    torch.set_num_threads(1)
    from canvascraft.artifact_root import artifact_root
    from canvascraft.preprocess import find_shard_set, load_shards
    from canvascraft.settings import get_settings
    from canvascraft.shard_reader import ShardReader
    from canvascraft.trainers import DDPMTrainer
    from canvascraft.tuning.trainable import trial_data  # what a trial imports (Ray Tune included)

    trainer = DDPMTrainer({**TRAINER, "steps": steps}, device="cpu")
    before = _status()  # imports and the model: the floor every trial pays whatever its data
    if mode == "stream":
        data: Any = trial_data({"shards": key, "kept_ids_key": None})
    elif mode == "mmap":
        artifacts = artifact_root(get_settings())
        shard_set = find_shard_set(artifacts, key)
        assert shard_set is not None
        data = ShardReader(shard_set, artifacts, read="mmap")
    else:  # the trainable's trial_data before issue 14
        shard_set = find_shard_set(artifact_root(get_settings()), key)
        assert shard_set is not None
        data = load_shards(shard_set)
    started = time.perf_counter()
    result = trainer.train(None, data)
    seconds = time.perf_counter() - started
    if barrier:  # hold the data while every other trial of this measurement runs too
        Path(barrier, f"ready-{os.getpid()}").touch()
        while not Path(barrier, "go").exists():
            time.sleep(0.05)
    print(json.dumps({"before": before, "after": _status(), "steps": result.steps, "seconds": seconds}), flush=True)


# -- the parent: run trials, sample PSS, collect ru_maxrss ------------------------------------------------------------
def _pss(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024 / MIB
    except OSError:
        return None
    return None


def trials(mode: str, key: str, steps: int, count: int, env: dict[str, str]) -> dict[str, Any]:
    """Run ``count`` concurrent trials; their peak RSS each, peak PSS each and the peak of the PSS sum (MiB)."""
    barrier = tempfile.mkdtemp(prefix="memory-barrier-")
    command = [
        sys.executable,
        "-m",
        "bench.memory",
        "--child",
        mode,
        "--key",
        key,
        "--steps",
        str(steps),
        "--barrier",
        barrier,
    ]
    procs = [
        subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    outputs: dict[int, list[str]] = {p.pid: [] for p in procs}
    readers = [
        threading.Thread(target=lambda p=p: outputs[p.pid].append(p.stdout.read() + p.stderr.read())) for p in procs
    ]
    for reader in readers:
        reader.start()
    peak_pss = {p.pid: 0.0 for p in procs}
    peak_sum, done = 0.0, threading.Event()

    def sample() -> None:
        nonlocal peak_sum
        while not done.is_set():
            values = {pid: _pss(pid) for pid in peak_pss}
            for pid, value in values.items():
                if value is not None:
                    peak_pss[pid] = max(peak_pss[pid], value)
            if all(v is not None for v in values.values()):
                peak_sum = max(peak_sum, sum(v for v in values.values() if v is not None))
            ready = len([f for f in os.listdir(barrier) if f.startswith("ready-")])
            if ready == count and not Path(barrier, "go").exists():
                time.sleep(1.0)  # a few samples with every trial holding its data at once
                Path(barrier, "go").touch()
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    maxrss, reports = {}, []
    try:
        for proc in procs:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            maxrss[proc.pid] = usage.ru_maxrss * 1024 / MIB  # Linux reports kB
    finally:
        done.set()
        sampler.join()
        for reader in readers:
            reader.join()
    for proc in procs:
        text = "".join(outputs[proc.pid])
        if proc.returncode != 0:
            raise RuntimeError(f"memory trial ({mode}) failed with exit code {proc.returncode}:\n{text[-3000:]}")
        reports.append(json.loads([line for line in text.splitlines() if line.startswith("{")][-1]))
    return {
        "maxrss": [maxrss[p.pid] for p in procs],
        "pss": [peak_pss[p.pid] for p in procs],
        "pss_sum": peak_sum,
        "reports": reports,
    }


def run(root: Path, steps: int, repeats: int) -> tuple[list[Row], str]:
    """Every dataset size x data path, then 1 vs 2 concurrent trials on the largest set; rows for the report."""
    found, note = datasets()
    data_root = root / "memory-root"
    env = {
        **os.environ,
        "CANVASCRAFT_HOME": str(root / "memory-home"),
        "CANVASCRAFT_ARTIFACT_ROOT": str(data_root),
        "OMP_NUM_THREADS": "1",
    }
    published = {name: publish(name, images, data_root) for name, images in found.items()}
    single: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for name, (key, _) in published.items():
        for _ in range(repeats):
            for mode in MODES:  # interleaved: a drift in the machine's load moves every path alike
                single.setdefault((name, mode), []).append(trials(mode, key, steps, 1, env))
    largest = list(published)[-1]
    pair = {
        mode: [trials(mode, published[largest][0], steps, 2, env) for _ in range(repeats)]
        for mode in ("stream", "load-all")
    }
    return rows(found, published, single, pair, largest, steps), text(note, single, pair, largest, steps)


def rows(
    found: dict[str, Any],
    published: dict[str, tuple[str, int]],
    single: dict[tuple[str, str], Any],
    pair: dict[str, Any],
    largest: str,
    steps: int,
) -> list[Row]:
    """The report rows: RSS per size, growth from the smallest to the largest set, and 2 trials vs 1."""
    out: list[Row] = []

    def rss(name: str, mode: str) -> Sample:
        return Sample([r["maxrss"][0] for r in single[(name, mode)]])

    def pss(name: str, mode: str) -> Sample:
        return Sample([r["pss"][0] for r in single[(name, mode)]])

    for name, (_, size) in published.items():
        label = f"{name}: {len(found[name]):,} x 1x{SIZE}x{SIZE} ({size / MIB:,.0f} MiB of shards)"
        for mode in ("stream", "mmap"):
            ours, old = rss(name, mode), rss(name, "load-all")
            out.append(
                Row(
                    f"peak RSS of one trial, {MODES[mode]}",
                    label,
                    "MiB",
                    ours,
                    old,
                    MODES["load-all"],
                    ours.median / old.median,
                    digits=0,
                )
            )
    smallest = next(iter(published))
    growth = f"{len(found[largest]):,} vs {len(found[smallest]):,} images"
    for mode in ("stream", "mmap"):
        grew = rss(largest, mode).median / rss(smallest, mode).median
        base = rss(largest, "load-all").median / rss(smallest, "load-all").median
        out.append(
            Row(
                f"peak RSS growth with the dataset, {MODES[mode]}",
                growth,
                "x",
                Sample([grew]),
                Sample([base]),
                MODES["load-all"],
                grew,
                ratio_label="largest / smallest",
                target="<= 1.2" if mode == "stream" else "",
                digits=3,
            )
        )
    for mode, judged in (("stream", True), ("load-all", False)):
        one_pss, one_rss = pss(largest, mode).median, rss(largest, mode).median
        two_pss = Sample([r["pss_sum"] for r in pair[mode]])
        two_rss = Sample([sum(r["maxrss"]) for r in pair[mode]])
        where = f"{len(found[largest]):,} images, {steps} steps"
        out.append(
            Row(
                f"2 concurrent trials vs 1: node PSS (sum at one instant), {MODES[mode]}",
                where,
                "MiB",
                two_pss,
                Sample([one_pss]),
                "1 trial",
                two_pss.median / one_pss,
                ratio_label="2 trials / 1 trial",
                target="<= 1.3" if judged else "",
                digits=0,
            )
        )
        out.append(
            Row(
                f"2 concurrent trials vs 1: sum of peak RSS, {MODES[mode]}",
                where,
                "MiB",
                two_rss,
                Sample([one_rss]),
                "1 trial",
                two_rss.median / one_rss,
                ratio_label="2 trials / 1 trial",
                digits=0,
            )
        )
    return out


def text(note: str, single: dict[tuple[str, str], Any], pair: dict[str, Any], largest: str, steps: int) -> str:
    """The section's explanation, with each trial's floor (imports + model) and what its data added."""
    added = {
        mode: (
            statistics.median(r["pss_sum"] for r in pair[mode]),
            statistics.median(r["pss"][0] for r in single[(largest, mode)]),
        )
        for mode in pair
    }
    lines = [
        (
            f"Each trial: a fresh process, DDPM UNet (16, 32) at {SIZE}x{SIZE}, batch {TRAINER['batch_size']}, "
            f"{steps} steps, 1 torch thread. Peak RSS is `ru_maxrss` of the child (`os.wait4`); PSS is sampled every "
            f"0.2 s from `/proc/<pid>/smaps_rollup`. {note}."
        ),
        "",
        (
            "The 2-trials target is judged on **PSS**: RSS counts a shared page (torch's libraries, a mapped shard) "
            "once in every process that maps it, PSS splits it between them, so the sum of PSS is what the node "
            "holds. The shard files sit in the page cache once per node (shared by every trial, reclaimable) and "
            "are in neither figure. The floor of a trial (Python, torch, Ray Tune and the model, before any data) "
            "is private to each process, so two trials can never cost less than two floors. On the largest set the "
            f"second trial added {added['stream'][0] - added['stream'][1]:,.0f} MiB of node PSS when streaming "
            f"(one trial alone: {added['stream'][1]:,.0f} MiB) and {added['load-all'][0] - added['load-all'][1]:,.0f} "
            f"MiB on the old path (one trial alone: {added['load-all'][1]:,.0f} MiB): what streaming removes is the "
            "data; the rest is a second Python + torch process. Each trial at the start (floor) and the end:"
        ),
        "",
        "| dataset | path | floor RSS / PSS (MiB) | at the end: RSS / anon / file (MiB) | PSS (MiB) |",
        "|---|---|---:|---:|---:|",
    ]
    for (name, mode), results in single.items():
        report = results[0]["reports"][0]
        before, after = report["before"], report["after"]
        lines.append(
            f"| {name} | {mode} | {before['VmRSS']:,.0f} / {before['Pss']:,.0f} | {after['VmRSS']:,.0f} / "
            f"{after['RssAnon']:,.0f} / {after['RssFile']:,.0f} | {after['Pss']:,.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``--child MODE --key KEY``: one trial (used by ``run``); otherwise run the section alone and print it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", choices=sorted(MODES))
    parser.add_argument("--key")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--barrier")
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.key, args.steps, args.barrier)
        return 0
    raise SystemExit("run it through bench/run.py: python -m bench.run --only memory")


if __name__ == "__main__":
    sys.exit(main())
