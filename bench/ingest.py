"""Ingest: CanvasCraft's ingest (list, download, hash, validate, cache) vs plain boto3 with the same concurrency.

CanvasCraft runs with the engine the settings choose (``ingest_engine``, obstore by default) and, for the engine
comparison, with the boto3 engine; the bare baselines are boto3 ``get_object`` (the reference) and obstore ``get``,
each from the same number of threads, interleaved in the same run.
"""

from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import partial
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
    existing = sum(
        len(p.get("Contents", []))
        for p in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    )
    if existing < n:

        def put(i: int) -> None:
            pixels = np.random.default_rng(i).integers(0, 256, (side, side, 3), dtype=np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
            client.put_object(Bucket=bucket, Key=f"{prefix}/{i % 10}/{i:05d}.png", Body=buffer.getvalue())

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(put, range(n)))
    return f"s3://{bucket}/{prefix}"


def frozen_keys(settings: Any) -> Any:
    """The keys the product client signs with (``make_s3_client`` builds it from the same session)."""
    from canvascraft.object_reader import settings_session

    return settings_session(settings).get_credentials().get_frozen_credentials()


def stock_client(client: Any, settings: Any) -> Any:
    """A plain boto3 client with the product client's endpoint, region, keys and Config, and nothing else of
    CanvasCraft's (botocore's own response parsing): what the bare baselines run on."""
    import boto3

    frozen = frozen_keys(settings)
    return boto3.session.Session().client(
        "s3",
        endpoint_url=client.meta.endpoint_url,
        region_name=client.meta.region_name,
        config=client.meta.config,
        aws_access_key_id=frozen.access_key,
        aws_secret_access_key=frozen.secret_key,
        aws_session_token=frozen.token,
    )


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


def obstore_download(client: Any, settings: Any, bucket: str, prefix: str, out: Path, workers: int) -> tuple[int, int]:
    """The bare obstore baseline: ``obstore.list``, then ThreadPoolExecutor + ``obstore.get``, bytes to files."""
    import obstore
    from obstore.store import S3Store

    frozen = frozen_keys(settings)  # the bench client's own keys
    store = S3Store(
        bucket,
        endpoint=client.meta.endpoint_url,
        region=client.meta.region_name,
        access_key_id=frozen.access_key,
        secret_access_key=frozen.secret_key,
        client_options={"allow_http": client.meta.endpoint_url.startswith("http://")},
    )
    keys = [
        m["path"] for batch in obstore.list(store, prefix=prefix) for m in batch if not m["path"].endswith("labels.csv")
    ]
    out.mkdir(parents=True, exist_ok=True)

    def get(key: str) -> int:
        data = bytes(obstore.get(store, key).bytes())
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


def ingest_with_engine(
    engine: str, sources: list[str], client: Any, cache: Path, rules: Any, workers: int, settings: Any
) -> int:
    """Objects an ingest through ``engine``'s reader downloaded (the reader is made inside the timed call, as
    CanvasCraft's default path makes its own)."""
    from canvascraft.ingest import ingest
    from canvascraft.object_reader import make_object_reader

    reader = make_object_reader(settings, client, engine)
    return ingest(sources, client, cache, rules, max_workers=workers, reader=reader).downloaded


def run(client: Any, bucket: str, sizes: list[int], repeats: int, root: Path, large: int = 0) -> list[Row]:
    """Rows per case: objects/s and MB/s of the chosen engine vs bare boto3, the boto3 engine and bare obstore
    beside them, and a re-ingest with nothing changed vs a bare listing."""
    from canvascraft.ingest import ImageRules, ingest
    from canvascraft.settings import get_settings
    from canvascraft.spec import DataSpec

    settings = get_settings()
    workers = settings.s3_max_concurrency
    engine = settings.ingest_engine
    other = "boto3" if engine == "obstore" else "obstore"
    sources = seed(client, bucket, sizes)
    rules = ImageRules.from_spec(DataSpec(source=sources[sizes[0]]))
    cases = [(f"{n} objects", n, sources[n]) for n in sizes]
    if large:
        cases.append((f"{large} objects, 256x256 RGB", large, seed_large(client, bucket, large)))
    baseline = f"boto3 get_object x{workers} threads"
    plain = stock_client(client, settings)  # the baselines' client: stock boto3, same endpoint, keys and Config
    rows: list[Row] = []
    for size, n, source in cases:
        prefix = source.split("/", 3)[3] + "/"
        cc_obj, cc_mb, other_obj, base_obj, base_mb, bare_obstore, re_s, list_s = [], [], [], [], [], [], [], []
        for _ in range(repeats):  # interleaved: every variant sees the same load
            work = Path(tempfile.mkdtemp(dir=root, prefix=f"ingest-{n}-"))
            seconds, report = timed(partial(ingest, [source], client, work / "cache", rules, max_workers=workers))
            if report.downloaded != n:
                raise RuntimeError(f"ingest of {source} downloaded {report.downloaded} objects, expected {n}")
            cc_obj.append(n / seconds)
            cc_mb.append(report.bytes_downloaded / seconds / 1e6)
            again, report2 = timed(partial(ingest, [source], client, work / "cache", rules, max_workers=workers))
            if report2.downloaded or report2.dataset_version != report.dataset_version:
                raise RuntimeError(f"re-ingest of unchanged {source} downloaded {report2.downloaded} objects")
            re_s.append(again)
            seconds, count = timed(
                partial(ingest_with_engine, other, [source], client, work / "cache-other", rules, workers, settings)
            )
            other_obj.append(count / seconds)
            seconds, (count, nbytes) = timed(partial(boto3_download, plain, bucket, prefix, work / "plain", workers))
            if count != n:
                raise RuntimeError(f"boto3 baseline fetched {count} objects of {source}, expected {n}")
            base_obj.append(n / seconds)
            base_mb.append(nbytes / seconds / 1e6)
            seconds, (count, _) = timed(
                partial(obstore_download, client, settings, bucket, prefix, work / "obstore", workers)
            )
            bare_obstore.append(count / seconds)
            list_s.append(timed(partial(boto3_list, plain, bucket, prefix))[0])
            shutil.rmtree(work, ignore_errors=True)
        ratio, spread = paired_ratio(cc_obj, base_obj)
        rows.append(
            Row(
                f"ingest objects/s ({engine} engine)",
                size,
                "objects/s",
                Sample(cc_obj),
                Sample(base_obj),
                baseline,
                ratio,
                spread,
                target=">= 1.0",
            )
        )
        ratio, spread = paired_ratio(cc_mb, base_mb)
        per_object = report.bytes_downloaded / n
        rows.append(
            Row(
                f"ingest MB/s ({engine} engine)",
                size,
                "MB/s",
                Sample(cc_mb),
                Sample(base_mb),
                baseline,
                ratio,
                spread,
                digits=3,
                note=f"objects are {per_object:,.0f}-byte PNGs on average"
                + (": per-object cost dominates" if per_object < 10_000 else ""),
            )
        )
        ratio, spread = paired_ratio(other_obj, base_obj)
        rows.append(
            Row(
                f"ingest objects/s ({other} engine)",
                size,
                "objects/s",
                Sample(other_obj),
                Sample(base_obj),
                baseline,
                ratio,
                spread,
                note="the same ingest with the other engine (engine comparison)",
            )
        )
        ratio, spread = paired_ratio(cc_obj, bare_obstore)
        rows.append(
            Row(
                f"ingest objects/s ({engine} engine) vs bare obstore",
                size,
                "objects/s",
                Sample(cc_obj),
                Sample(bare_obstore),
                f"obstore get x{workers} threads",
                ratio,
                spread,
                note="what validation, hashing, the cache and the manifest cost over the bare transfer",
            )
        )
        ratio, spread = paired_ratio(re_s, list_s)
        rows.append(
            Row(
                "incremental re-ingest, nothing changed",
                size,
                "s",
                Sample(re_s),
                Sample(list_s),
                "boto3 list only",
                ratio,
                spread,
                ratio_label="re-ingest / list",
                digits=3,
                note="downloads nothing; cost = listing + labels.csv + per-object verdict reuse + manifest",
            )
        )
    return rows
