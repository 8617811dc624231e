"""Parallel stages (issue 14): images/s of each piece-mapped stage on 1 and 2 workers (thread pool), next to the
single-process loop it replaced, all measured in the same run.

One function per stage returns its rows: ``preprocess_rows`` (here); the palettes and FID-feature stages add
``palettes_rows`` / ``fid_rows`` beside it and ``run`` collects them. The stages are measured through their core
functions (``canvascraft.preprocess.preprocess(max_workers=...)``: the same pieces and piece function the Prefect
``preprocess-shard`` tasks run), so the figures are the parallelism itself, not Prefect's per-task-run cost
(``bench/orchestration.py`` measures that).
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Row, Sample, load_average, paired_ratio

PHOTO_SIZE = (512, 384)  # preprocess's "photo-sized" input (width, height): decoding dominates, as for real photos
PHOTO_STACK = [
    {"name": "resize", "params": {"size": 64}},
    {"name": "center_crop", "params": {"size": 64}},
    {"name": "normalize"},
]
DIGITS_STACK = [
    {"name": "resize", "params": {"size": 8}},
    {"name": "center_crop", "params": {"size": 8}},
    {"name": "grayscale"},
    {"name": "normalize"},
]


def snapshot_from(samples: list[tuple[str, str | None, bytes]], cache_root: Path) -> Any:
    """A snapshot manifest of encoded images written straight into an object cache (no S3: only preprocess is timed)."""
    from PIL import Image

    from canvascraft.hashing import sha256_bytes
    from canvascraft.ingest.cache import ObjectCache
    from canvascraft.ingest.manifest import ManifestEntry, SnapshotManifest

    cache = ObjectCache(cache_root)
    entries = []
    for key, label, data in samples:
        sha = sha256_bytes(data)
        cache.put(sha, data)
        with Image.open(io.BytesIO(data)) as image:
            width, height, mode = image.width, image.height, image.mode
        entries.append(
            ManifestEntry(
                uri=f"s3://bench/{key}",
                key=key,
                etag=sha[:32],
                sha256=sha,
                size=len(data),
                label=label,
                width=width,
                height=height,
                mode=mode,
            )
        )
    return SnapshotManifest(sources=["s3://bench"], entries=sorted(entries, key=lambda e: e.uri))


def photo_samples(count: int, size: tuple[int, int] = (256, 256)) -> list[tuple[str, str | None, bytes]]:
    """Fashion-MNIST (Debian's package) upscaled to ``size``, tinted per image, as quality-90 RGB JPEGs."""
    import numpy as np
    from PIL import Image

    from canvascraft.datasets import load_dataset

    samples = []
    for index, (key, label, png) in enumerate(load_dataset("fashion-mnist", limit=count)):
        with Image.open(io.BytesIO(png)) as image:
            gray = np.asarray(image.resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
        tint = np.array([1.0, 0.6 + 0.04 * (index % 10), 0.9 - 0.05 * (index % 7)], dtype=np.float32)
        rgb = np.clip(gray[..., None] * tint, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="JPEG", quality=90)
        samples.append((key.replace(".png", ".jpg"), label, buffer.getvalue()))
    return samples


def digit_samples(count: int) -> list[tuple[str, str | None, bytes]]:
    """scikit-learn's 8 x 8 digits as PNGs (what the quick profile trains on)."""
    from canvascraft.datasets import load_dataset

    return list(load_dataset("digits", limit=count))


def single_loop(manifest: Any, cache_root: Path, stack: Any, seed: int, out: Path) -> int:
    """The preprocess it replaced: Pillow decode, the brush stack, one loop, one stacked tensor, one file."""
    import torch
    from safetensors.torch import save_file

    from canvascraft.decoding import load_image_pil
    from canvascraft.ingest.cache import ObjectCache

    cache = ObjectCache(cache_root)
    batch = torch.stack(
        [stack(load_image_pil(cache.object_path(e.sha256)), seed=seed, key=e.sha256) for e in manifest.entries]
    ).contiguous()
    save_file({"images": batch}, str(out / "shard-00000.safetensors"))
    return len(batch)


def gil_free_ratio(megabytes: int = 64) -> float:
    """2 threads vs 1 on work that never holds the GIL (sha256 of 4 MiB blocks): what 2 workers can gain right now."""
    import hashlib
    import threading

    block = bytes(4 << 20)

    def hash_blocks() -> None:
        for _ in range(megabytes // 4):
            hashlib.sha256(block).digest()

    seconds = []
    for threads in (1, 2):
        workers = [threading.Thread(target=hash_blocks) for _ in range(threads)]
        started = time.perf_counter()
        [w.start() for w in workers]
        [w.join() for w in workers]
        seconds.append((time.perf_counter() - started) / threads)
    return seconds[0] / seconds[1]


def _measure(
    name: str, samples: list[tuple[str, str | None, bytes]], brushes: list[dict[str, Any]], root: Path, repeats: int
) -> tuple[list[Row], str]:
    """Interleaved repeats of: the old loop, pieces on 1 worker, pieces on 2 workers (each into an empty root), and
    the GIL-free control right before the 2-worker run (the ceiling of its ratio on this machine at that moment)."""
    from canvascraft.artifact_root import ArtifactRoot
    from canvascraft.brushes import BrushStack
    from canvascraft.preprocess import preprocess

    work = Path(tempfile.mkdtemp(prefix=f"parallel-{name}-", dir=root))
    manifest = snapshot_from(samples, work / "cache")
    stack = BrushStack.from_spec(brushes)
    n = len(manifest.entries)
    loop, one, two, busy, ceiling = [], [], [], [], []
    pieces = 0
    for repeat in range(repeats):
        out = work / f"loop-{repeat}"
        out.mkdir()
        started = time.perf_counter()
        single_loop(manifest, work / "cache", stack, 0, out)
        loop.append(n / (time.perf_counter() - started))
        for workers, figures in ((1, one), (2, two)):
            artifacts = ArtifactRoot(str(work / f"root-{workers}-{repeat}"), work / f"root-cache-{workers}-{repeat}")
            if workers == 2:
                ceiling.append(gil_free_ratio())
            started, cpu = time.perf_counter(), time.process_time()
            shards = preprocess(manifest, work / "cache", stack, artifacts, seed=0, max_workers=workers)
            wall = time.perf_counter() - started
            figures.append(n / wall)
            pieces = len(shards.pieces)
            if workers == 2:
                busy.append((time.process_time() - cpu) / wall)  # cores this process actually got
    size = f"{n:,} {name}"
    ratio_two, spread_two = paired_ratio(two, one)
    ratio_one, spread_one = paired_ratio(one, loop)
    ratio_end, spread_end = paired_ratio(two, loop)
    rows = [
        Row(
            f"preprocess {name}: 2 workers vs 1",
            size,
            "images/s",
            Sample(two),
            Sample(one),
            "1 worker",
            ratio_two,
            spread_two,
            "2 workers / 1 worker",
            ">= 1.7",
            note=f"{pieces} pieces; CPU time / wall time of the 2-worker runs {min(busy):.2f}–{max(busy):.2f} "
            f"(2.0 = both cores); GIL-free control (sha256, 2 threads / 1) just before each: "
            f"{min(ceiling):.2f}–{max(ceiling):.2f}, so the stage reached "
            f"{ratio_two / statistics.median(ceiling):.0%} of what the machine allowed",
        ),
        Row(
            f"preprocess {name}: pieces on 1 worker vs the old loop",
            size,
            "images/s",
            Sample(one),
            Sample(loop),
            "old single loop (Pillow)",
            ratio_one,
            spread_one,
            "1 worker / old loop",
        ),
        Row(
            f"preprocess {name}: 2 workers vs the old loop",
            size,
            "images/s",
            Sample(two),
            Sample(loop),
            "old single loop (Pillow)",
            ratio_end,
            spread_end,
            "2 workers / old loop",
        ),
    ]
    return rows, f"{name}: load average {load_average()} after the runs"


def preprocess_rows(root: Path, photos: int, repeats: int) -> tuple[list[Row], list[str]]:
    """The preprocess stage on photo-sized JPEGs and on the 8 x 8 digits."""
    rows, notes = [], []
    for name, samples, brushes in (
        ("photos (512x384 JPEG -> 64 px)", photo_samples(photos, PHOTO_SIZE), PHOTO_STACK),
        ("digits (8 px PNG)", digit_samples(1797), DIGITS_STACK),
    ):
        stage_rows, note = _measure(name, samples, brushes, root, repeats)
        rows += stage_rows
        notes.append(note)
    return rows, notes


# digits-quick's palettes at the spec's default palette resolution (features.image_size)
PALETTES = [{"name": "image_stats"}, {"name": "rgb_histogram", "params": {"bins": 8}}]
PALETTE_SIZE = 32


def palette_loop(paths: list[Path], ids: list[str], palette_set: Any) -> int:
    """The palette step it replaced: Pillow decode + resize of every image, one batch per palette resolution."""
    from canvascraft.decoding import load_image_pil
    from canvascraft.features.palette_chunks import compute_palette_frame, load_palette_images
    from canvascraft.palettes import PaletteSet

    for size in sorted({p.image_size for p in palette_set}):
        group = PaletteSet([p for p in palette_set if p.image_size == size])
        compute_palette_frame(load_palette_images(paths, size, decode=load_image_pil), ids, group)
    return len(ids)


def _measure_palettes(
    name: str, samples: list[tuple[str, str | None, bytes]], root: Path, repeats: int
) -> tuple[list[Row], str]:
    """Interleaved repeats of: the old palette loop, chunks on 1 worker, chunks on 2 workers (no Feast I/O)."""
    from canvascraft.features.palette_chunks import compute_chunks, plan_palette_chunks
    from canvascraft.ingest.cache import ObjectCache
    from canvascraft.palettes import PaletteSet

    work = Path(tempfile.mkdtemp(prefix=f"palettes-{name[:6]}-", dir=root))
    manifest = snapshot_from(samples, work / "cache")
    palette_set = PaletteSet.from_spec(
        [{"name": c["name"], "params": {"image_size": PALETTE_SIZE, **c.get("params", {})}} for c in PALETTES]
    )
    cache = ObjectCache(work / "cache")
    ids = [e.sha256 for e in manifest.entries]
    paths = {i: cache.object_path(i) for i in ids}
    chunks = plan_palette_chunks(manifest.entries, palette_set, [set() for _ in palette_set])  # an empty store
    n = len(ids)
    loop, one, two = [], [], []
    busy: dict[int, list[float]] = {1: [], 2: []}  # CPU time / wall time: the cores this process actually got
    for _ in range(repeats):
        started = time.perf_counter()
        palette_loop([paths[i] for i in ids], ids, palette_set)
        loop.append(n / (time.perf_counter() - started))
        for workers, figures in ((1, one), (2, two)):
            started, cpu = time.perf_counter(), time.process_time()
            rows = compute_chunks(chunks, palette_set, paths, max_workers=workers)
            wall = time.perf_counter() - started
            if sum(r.computed for r in rows) != n:
                raise RuntimeError(f"palette chunks computed {sum(r.computed for r in rows)} of {n} images")
            figures.append(n / wall)
            busy[workers].append((time.process_time() - cpu) / wall)
    size = f"{n:,} {name}"
    ratio_two, spread_two = paired_ratio(two, one)
    ratio_one, spread_one = paired_ratio(one, loop)
    ratio_end, spread_end = paired_ratio(two, loop)
    rows = [
        Row(
            f"palettes {name}: 2 workers vs 1",
            size,
            "images/s",
            Sample(two),
            Sample(one),
            "1 worker",
            ratio_two,
            spread_two,
            "2 workers / 1 worker",
            ">= 1.7",
            note=f"{len(chunks)} chunks; CPU time / wall time of the 1-worker runs {min(busy[1]):.2f}–"
            f"{max(busy[1]):.2f}, of the 2-worker runs {min(busy[2]):.2f}–{max(busy[2]):.2f} (2.0 = both cores)",
        ),
        Row(
            f"palettes {name}: chunks on 1 worker vs the old loop",
            size,
            "images/s",
            Sample(one),
            Sample(loop),
            "old single loop (Pillow)",
            ratio_one,
            spread_one,
            "1 worker / old loop",
        ),
        Row(
            f"palettes {name}: 2 workers vs the old loop",
            size,
            "images/s",
            Sample(two),
            Sample(loop),
            "old single loop (Pillow)",
            ratio_end,
            spread_end,
            "2 workers / old loop",
        ),
    ]
    return rows, f"palettes {name}: load average {load_average()} after the runs"


def control_rows(repeats: int) -> list[Row]:
    """What 2 threads can gain on this machine right now: sha256 of a 4 MiB buffer (hashlib releases the GIL for
    inputs over 2 KiB) on 1 vs 2 threads. A stage's 2-worker ratio is read against this ceiling: on a shared
    machine whose other jobs hold a core, even work that never takes the GIL gets ~1.0."""
    import hashlib
    import threading

    data = bytes(4 << 20)

    def spin() -> None:
        for _ in range(50):
            hashlib.sha256(data).digest()

    spin()  # warm-up
    one, two = [], []
    for _ in range(repeats):
        for threads, figures in ((1, one), (2, two)):
            workers = [threading.Thread(target=spin) for _ in range(threads)]
            started = time.perf_counter()
            [w.start() for w in workers]
            [w.join() for w in workers]
            figures.append(50 * 4 * threads / (time.perf_counter() - started))
    ratio, spread = paired_ratio(two, one)
    return [
        Row(
            "control: GIL-free sha256, 2 threads vs 1",
            "4 MiB x 50 per thread",
            "MiB/s",
            Sample(two),
            Sample(one),
            "1 thread",
            ratio,
            spread,
            "2 threads / 1 thread",
            digits=0,
            note="the ceiling of any 2-worker ratio measured in this run (2.0 on 2 idle cores)",
        )
    ]


def palettes_rows(root: Path, photos: int, repeats: int) -> tuple[list[Row], list[str]]:
    """The palette step (decode + resize + digits-quick's palettes) on photo-sized JPEGs and on the 8 x 8 digits."""
    rows, notes = control_rows(repeats), []
    for name, samples in (("photos (256 px JPEG)", photo_samples(photos)), ("digits (8 px PNG)", digit_samples(1797))):
        stage_rows, note = _measure_palettes(name, samples, root, repeats)
        rows += stage_rows
        notes.append(note)
    return rows, notes


def run(root: Path, photos: int, repeats: int) -> tuple[list[Row], str]:
    """Every parallel stage's rows and the section's text."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # workers are the only parallelism measured: no intra-op threads inside a worker
    try:
        rows, notes = preprocess_rows(root, photos, repeats)
        palette_rows, palette_notes = palettes_rows(root, photos, repeats)
        rows, notes = rows + palette_rows, notes + palette_notes
    finally:
        torch.set_num_threads(threads)
    text = "\n".join(
        [
            (
                "Images/s of the preprocess stage through its core function (the pieces and piece function the "
                "Prefect `preprocess-shard` tasks run) on a thread pool of 1 and 2 workers, against the single loop it "
                "replaced (Pillow decode + brushes + one `torch.stack`, one safetensors file), interleaved repeats in "
                "one process, torch intra-op threads set to 1. Pieces decode with `torchvision.io` (PNG/JPEG/WEBP), "
                "which releases the GIL; a worker count above the cores the machine gives this process cannot help, "
                "so read the 2-worker ratio with the CPU-time / wall-time note beside it: this 2-core machine is "
                "shared with other jobs."
            ),
            "",
            *[f"- {note}" for note in notes],
        ]
    )
    return rows, text
