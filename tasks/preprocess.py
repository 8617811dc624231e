"""Task: apply the brush stack and write tensor shards, cached by (dataset version, brush-stack hash)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from canvascraft.brushes import BrushStack
from canvascraft.ingest import IngestReport, SnapshotManifest
from canvascraft.preprocess import ShardSet, preprocess, stack_key
from canvascraft.settings import get_settings
from canvascraft.spec import PipelineSpec


def _shards_root() -> Path:
    """Where shard sets live."""
    return get_settings().home / "shards"


def preprocess_cache_key(context: Any, parameters: dict[str, Any]) -> str | None:
    """Key = dataset version + brush-stack key (content only: no run ids, no folder names).

    The cached value is a small ShardSet pointing at shards on disk, so there is no key (no cache lookup) while
    those shards are absent: a cache hit can never name shards that were deleted. The first run therefore does
    not populate the cache; the next one (which finds the shards and returns at once) does.
    """
    report: IngestReport = parameters["report"]
    spec: PipelineSpec = parameters["spec"]
    key = stack_key(BrushStack.from_spec(spec.brushes), spec.seed)
    if not (_shards_root() / report.dataset_version / key / "index.json").is_file():
        return None
    return f"preprocess-{report.dataset_version}-{key}"


@task(name="preprocess", cache_key_fn=preprocess_cache_key, persist_result=True)
def preprocess_snapshot(report: IngestReport, spec: PipelineSpec) -> ShardSet:
    """Apply the spec's brushes to the snapshot's images (compute only: no retries)."""
    settings = get_settings()
    manifest = SnapshotManifest.load(report.manifest_path)
    return preprocess(
        manifest, settings.home / "cache", BrushStack.from_spec(spec.brushes), _shards_root(), seed=spec.seed
    )
