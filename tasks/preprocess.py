"""Task: apply the brush stack and write tensor shards, cached by (dataset version, brush-stack hash)."""

from __future__ import annotations

from typing import Any

from prefect import task

from canvascraft.artifact_root import artifact_root
from canvascraft.brushes import BrushStack
from canvascraft.ingest import IngestReport
from canvascraft.ingest.snapshots import load_manifest
from canvascraft.preprocess import ShardSet, preprocess, shard_set_key, stack_key
from canvascraft.settings import get_settings
from canvascraft.spec import PipelineSpec


def preprocess_cache_key(context: Any, parameters: dict[str, Any]) -> str | None:
    """Key = dataset version + brush-stack key (content only: no run ids, no folder names).

    The cached value is a small ShardSet naming shards in the artifact root, so there is no key (no cache lookup)
    while the root lacks them: a cache hit can never name shards that were deleted. The first run therefore does
    not populate the cache; the next one, on any worker (which finds the shards and returns at once), does.
    """
    report: IngestReport = parameters["report"]
    spec: PipelineSpec = parameters["spec"]
    key = stack_key(BrushStack.from_spec(spec.brushes), spec.seed)
    if not artifact_root(get_settings()).has_folder(shard_set_key(report.dataset_version, key)):
        return None
    return f"preprocess-{report.dataset_version}-{key}"


@task(name="preprocess", cache_key_fn=preprocess_cache_key, persist_result=True)
def preprocess_snapshot(report: IngestReport, spec: PipelineSpec) -> ShardSet:
    """Apply the spec's brushes to the snapshot's images (compute only: no retries)."""
    settings = get_settings()
    artifacts = artifact_root(settings)
    manifest = load_manifest(report.dataset_version, artifacts)
    return preprocess(manifest, settings.home / "cache", BrushStack.from_spec(spec.brushes), artifacts, seed=spec.seed)
