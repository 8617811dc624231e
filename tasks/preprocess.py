"""Tasks of the preprocess stage: find the shard set, or plan its pieces, preprocess each (mapped), assemble it.

``flows/stages.py`` runs them as one subflow: ``preprocess-lookup`` (Prefect-cached), then, when the shard set is
not published yet, ``preprocess-plan`` -> ``preprocess-shard`` mapped over the pieces (one task run per piece, on
the stage's task runner) -> ``preprocess-assemble``.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from canvascraft.artifact_root import artifact_root
from canvascraft.brushes import BrushStack
from canvascraft.ingest import IngestReport
from canvascraft.ingest.cache import ObjectCache
from canvascraft.ingest.snapshots import fetch_objects, load_manifest
from canvascraft.pieces import Piece, PieceResult, find_piece, preprocess_piece
from canvascraft.preprocess import (
    ShardSet,
    assemble_shard_set,
    plan_snapshot,
    read_shard_index,
    shard_set_key,
    stack_key,
)
from canvascraft.settings import get_settings
from canvascraft.spec import PipelineSpec
from canvascraft.storage import make_s3_client
from tasks.retry_policy import retry_on_io


def preprocess_cache_key(context: Any, parameters: dict[str, Any]) -> str | None:
    """Key = dataset version + brush-stack key (content only: no run ids, no folder names).

    The cached value names a shard set in the artifact root, so there is no key (no cache lookup) while the root
    lacks it: a cache hit can never name shards that were deleted. The first run therefore does not populate the
    cache; the next one, on any worker (which finds the shard set and returns at once), does.
    """
    report: IngestReport = parameters["report"]
    spec: PipelineSpec = parameters["spec"]
    key = stack_key(BrushStack.from_spec(spec.brushes), spec.seed)
    if not artifact_root(get_settings()).has_folder(shard_set_key(report.dataset_version, key)):
        return None
    return f"preprocess-{report.dataset_version}-{key}"


def piece_cache_key(context: Any, parameters: dict[str, Any]) -> str | None:
    """Key = piece content key + stack key, only once the piece's marker is in the artifact root (as above)."""
    piece: Piece = parameters["piece"]
    if not artifact_root(get_settings()).exists(piece.marker_key):
        return None
    return f"preprocess-shard-{piece.stack_key}-{piece.key}"


@task(
    name="preprocess-lookup",
    cache_key_fn=preprocess_cache_key,
    persist_result=True,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_on_io,
)
def find_preprocessed(report: IngestReport, spec: PipelineSpec) -> ShardSet | None:
    """The published shard set of this snapshot and brush stack, or None."""
    key = stack_key(BrushStack.from_spec(spec.brushes), spec.seed)
    found = read_shard_index(artifact_root(get_settings()), shard_set_key(report.dataset_version, key))
    return None if found is None else found.model_copy(update={"reuse": "reused", "pieces_computed": 0})


# Not cached and not persisted: cheap (one manifest read), and its value is the whole manifest again.
@task(
    name="preprocess-plan",
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_on_io,
)
def plan_preprocess(report: IngestReport, spec: PipelineSpec) -> list[Piece]:
    """The snapshot's content-defined pieces for the spec's brush stack."""
    key = stack_key(BrushStack.from_spec(spec.brushes), spec.seed)
    return plan_snapshot(load_manifest(report.dataset_version, artifact_root(get_settings())), key)


# Retries only on transient I/O (fetching images, writing the piece); a decode or brush error fails at once.
@task(
    name="preprocess-shard",
    task_run_name="preprocess-shard-{piece.index}",
    cache_key_fn=piece_cache_key,
    persist_result=True,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_on_io,
)
def preprocess_shard(piece: Piece, spec: PipelineSpec) -> PieceResult:
    """Apply the spec's brushes to one piece's images and store the piece (or find it stored)."""
    settings = get_settings()
    artifacts = artifact_root(settings)
    if (found := find_piece(artifacts, piece)) is not None:  # stored by another dataset version or worker
        return found
    cache = ObjectCache(settings.home / "cache")
    paths = {e.sha256: cache.object_path(e.sha256) for e in piece.entries}
    missing = [e for e in piece.entries if cache.defect(e.sha256, e.size) is not None]
    if missing:  # a worker that did not ingest (another machine, a Ray node) fetches by URI and checks sha256
        paths.update(fetch_objects(missing, cache, make_s3_client(settings), settings.s3_max_concurrency))
    return preprocess_piece(piece, BrushStack.from_spec(spec.brushes), artifacts, paths, seed=spec.seed)


@task(
    name="preprocess-assemble",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_on_io,
)
def assemble_preprocess(
    report: IngestReport, spec: PipelineSpec, pieces: list[Piece], results: list[PieceResult]
) -> ShardSet:
    """Publish the shard set's index once every piece exists."""
    settings = get_settings()
    artifacts = artifact_root(settings)
    return assemble_shard_set(
        load_manifest(report.dataset_version, artifacts),
        BrushStack.from_spec(spec.brushes),
        spec.seed,
        pieces,
        results,
        artifacts,
        settings.home / "cache",
    )
