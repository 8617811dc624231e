"""Ingest: CanvasCraft's ingest (list, download, hash, validate, cache) vs plain boto3 with the same concurrency."""

from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import Row, Sample, paired_ratio, timed


def seed(client: Any, bucket: str, sizes: list[int]) -> dict[int, str]:
    """One prefix per size, holding that many real digits PNGs (plus labels.csv)."""
    from canvascraft.datasets import seed_dataset

    sources = {}
    for n in sizes:
        dest = f"s3://{bucket}/digits-{n}"
        seed_dataset("digits", client, dest, limit=n)
        sources[n] = dest
    return sources


def seed_large(client: Any, bucket: str, n: int, side: int = 256) -> str:
    """``n`` photo-sized objects (``side`` x ``side`` RGB PNGs of seeded noise, ~200 KB each: incompressible, so the
    bytes on the wire are real); idempotent. Returns the prefix URI."""
    import io

    import numpy as np
    from PIL import Image

    prefix = f"large-{side}-{n}"
    existing = sum(len(p.get("Contents", [])) for p in
                   client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"))
    if existing < n:
        def put(i: int) -> None:
            pixels = np.random.default_rng(i).integers(0, 256, (side, side, 3), dtype=np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
            client.put_object(Bucket=bucket, Key=f"{prefix}/{i % 10}/{i:05d}.png", Body=buffer.getvalue())

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(put, range(n)))
    return f"s3://{bucket}/{prefix}"


def boto3_download(client: Any, bucket: str, prefix: str, out: Path, workers: int) -> tuple[int, int]:
    """The bare baseline: paginated list, then ThreadPoolExecutor + get_object, bytes written to files."""
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("labels.csv")]
    out.mkdir(parents=True, exist_ok=True)

    def get(key: str) -> int:
        data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        (out / key.replace("/", "_")).write_bytes(data)
        return len(data)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        total = sum(pool.map(get, keys))
    return len(keys), total


def boto3_list(client: Any, bucket: str, prefix: str) -> int:
    """Listing alone: the floor of any change detection (what an incremental re-ingest must at least do)."""
    count = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        count += len(page.get("Contents", []))
    return count


def run(client: Any, bucket: str, sizes: list[int], repeats: int, root: Path, large: int = 0) -> list[Row]:
    from canvascraft.ingest import ImageRules, ingest
    from canvascraft.settings import get_settings
    from canvascraft.spec import DataSpec

    settings = get_settings()
    workers = settings.s3_max_concurrency
    sources = seed(client, bucket, sizes)
    rules = ImageRules.from_spec(DataSpec(source=sources[sizes[0]]))
    cases = [(f"{n} objects", n, sources[n]) for n in sizes]
    if large:
        cases.append((f"{large} objects, 256x256 RGB", large, seed_large(client, bucket, large)))
    rows: list[Row] = []
    for size, n, source in cases:
        prefix = source.split("/", 3)[3] + "/"
        cc_obj, cc_mb, base_obj, base_mb, re_s, list_s = [], [], [], [], [], []
        for _ in range(repeats):  # interleaved: CanvasCraft and baseline see the same load
            work = Path(tempfile.mkdtemp(dir=root, prefix=f"ingest-{n}-"))
            seconds, report = timed(lambda: ingest([source], client, work / "cache", rules, max_workers=workers))
            assert report.downloaded == n, (report.downloaded, n)
            cc_obj.append(n / seconds)
            cc_mb.append(report.bytes_downloaded / seconds / 1e6)
            again, report2 = timed(lambda: ingest([source], client, work / "cache", rules, max_workers=workers))
            assert report2.downloaded == 0 and report2.dataset_version == report.dataset_version
            re_s.append(again)
            seconds, (count, nbytes) = timed(lambda: boto3_download(client, bucket, prefix, work / "plain", workers))
            assert count == n
            base_obj.append(n / seconds)
            base_mb.append(nbytes / seconds / 1e6)
            list_s.append(timed(lambda: boto3_list(client, bucket, prefix))[0])
            shutil.rmtree(work, ignore_errors=True)
        ratio, spread = paired_ratio(cc_obj, base_obj)
        rows.append(Row("ingest objects/s", size, "objects/s", Sample(cc_obj), Sample(base_obj),
                        f"boto3 get_object x{workers} threads", ratio, spread, target=">= 1.0"))
        ratio, spread = paired_ratio(cc_mb, base_mb)
        per_object = report.bytes_downloaded / n
        rows.append(Row("ingest MB/s", size, "MB/s", Sample(cc_mb), Sample(base_mb),
                        f"boto3 get_object x{workers} threads", ratio, spread, digits=3,
                        note=f"objects are {per_object:,.0f}-byte PNGs on average"
                             + (": per-object cost dominates" if per_object < 10_000 else "")))
        ratio, spread = paired_ratio(re_s, list_s)
        rows.append(Row("incremental re-ingest, nothing changed", size, "s", Sample(re_s), Sample(list_s),
                        "boto3 list only", ratio, spread, ratio_label="re-ingest / list", digits=3,
                        note="downloads nothing; cost = listing + labels.csv + per-object verdict reuse + manifest"))
    return rows
