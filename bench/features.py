"""Features: palette throughput and Feast materialization at several sizes; materialization against Feast's bare
``write_to_online_store`` of the same rows."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import yaml

from bench.common import REPO, Row, Sample, fresh_home, paired_ratio, timed


def spec_for(source: str, name: str = "bench-features") -> dict[str, Any]:
    """digits-quick's spec (its palettes) pointed at ``source``."""
    spec = yaml.safe_load((REPO / "pipelines" / "digits-quick.yaml").read_text())
    spec["name"] = name
    spec["data"] = {"source": source, "min_valid_count": 1}
    return spec


def write_online_bare(store: Any, frames: dict[str, Any]) -> int:
    """Feast's bare ``write_to_online_store`` of each view's offline rows; returns the rows written."""
    for view, frame in frames.items():
        store.write_to_online_store(feature_view_name=view, df=frame)
    return sum(len(f) for f in frames.values())


def run(client: Any, sources: dict[int, str], repeats: int, root: Path) -> list[Row]:
    import pandas as pd

    from canvascraft.features.definitions import palette_set_for
    from canvascraft.features.offline import compute_palette_frame, view_folder
    from canvascraft.features.stage import (
        load_palette_images,
        materialize_snapshot,
        snapshot_image_ids,
    )
    from canvascraft.features.store import open_store
    from canvascraft.ingest import ImageRules, SnapshotManifest, ingest
    from canvascraft.ingest.cache import ObjectCache
    from canvascraft.settings import get_settings
    from canvascraft.spec import load_spec

    rows: list[Row] = []
    for n, source in sources.items():
        spec = load_spec(spec_for(source))
        palette_set = palette_set_for(spec)
        size = max(p.image_size for p in palette_set)
        load_s, palette_ips, stage_s, mat_rps, bare_rps, apply_s, mat_rows = [], [], [], [], [], [], 0
        for _ in range(repeats):
            fresh_home(root, f"features-{n}")
            settings = get_settings()
            report = ingest(
                [source],
                client,
                settings.home / "cache",
                ImageRules.from_spec(spec.data),
                max_workers=settings.s3_max_concurrency,
            )
            manifest = SnapshotManifest.load(report.manifest_path)
            ids = snapshot_image_ids(manifest)
            cache = ObjectCache(settings.home / "cache")
            paths = [cache.object_path(i) for i in ids]
            seconds, images = timed(partial(load_palette_images, paths, size))
            load_s.append(len(ids) / seconds)
            seconds, _ = timed(partial(compute_palette_frame, images, ids, palette_set))
            palette_ips.append(len(ids) / seconds)
            seconds, result = timed(partial(materialize_snapshot, manifest, spec, settings))
            stage_s.append(seconds)
            apply_s.append(result["seconds"]["apply"])
            mat_rows = result["rows_materialized"]
            mat_rps.append(mat_rows / result["seconds"]["materialize"])
            # bare Feast: the same offline rows pushed straight into the online store
            store = open_store(settings)
            frames = {}
            for palette in palette_set:
                folder = view_folder(store, palette)
                parts = sorted(Path(folder).glob("*.parquet"))  # a fresh home: the artifact root is a local folder
                frames[palette.view_name()] = pd.concat([pd.read_parquet(p) for p in parts])
            seconds, bare_rows = timed(partial(write_online_bare, store, frames))
            bare_rps.append(bare_rows / seconds)
        rows.append(
            Row("image load + resize (palette input)", f"{n} images", "images/s", Sample(load_s), None, "", digits=0)
        )
        rows.append(
            Row(
                "palettes (image_stats + rgb_histogram)",
                f"{n} images",
                "images/s",
                Sample(palette_ips),
                None,
                "",
                digits=0,
            )
        )
        rows.append(
            Row(
                "features stage (apply + load + palettes + offline write + materialize)",
                f"{n} images",
                "s",
                Sample(stage_s),
                None,
                "",
                digits=2,
                note=f"of which Feast apply {Sample(apply_s).fmt(2)} s (fixed cost per run)",
            )
        )
        ratio, spread = paired_ratio(mat_rps, bare_rps)
        rows.append(
            Row(
                "Feast materialization",
                f"{mat_rows} rows ({n} images x {len(palette_set)} views)",
                "rows/s",
                Sample(mat_rps),
                Sample(bare_rps),
                "Feast write_to_online_store of the same rows",
                ratio,
                spread,
                digits=0,
                note="CanvasCraft calls materialize_incremental (offline read via DuckDB/parquet + online "
                "write); the baseline is the online write alone",
            )
        )
    return rows
