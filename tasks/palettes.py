"""Task: palettes of one content-defined chunk (mapped by the ``palettes`` stage in ``flows/stages.py``).

Kept apart from ``tasks/features.py``: this module imports neither Feast nor the store (``import feast`` costs
10-20 s cold), so a Ray worker that runs chunks never loads them.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from canvascraft.features.palette_chunks import ChunkRows, PaletteChunk, compute_chunk_rows, palette_set_for
from canvascraft.ingest.cache import ObjectCache
from canvascraft.ingest.snapshots import fetch_objects
from canvascraft.settings import get_settings
from canvascraft.spec import PipelineSpec
from canvascraft.storage import make_s3_client
from tasks.retry_policy import retry_on_io


def palette_chunk_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    """Key = chunk content + palette-set hash + the ids it computes (its result is a function of exactly these)."""
    chunk: PaletteChunk = parameters["chunk"]
    return chunk.cache_key()


# Rows are keyed by image content, so a cached result (persisted) is always valid data, whichever store reads it.
@task(
    name="palette-chunk",
    cache_key_fn=palette_chunk_cache_key,
    persist_result=True,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_on_io,
)
def palette_chunk(chunk: PaletteChunk, spec: PipelineSpec) -> ChunkRows:
    """Every palette of the spec for the chunk's images missing offline (fetched by URI on a worker lacking them)."""
    settings = get_settings()
    cache = ObjectCache(settings.home / "cache")
    missing = set(chunk.missing)
    todo = [e for e in chunk.entries if e.sha256 in missing]
    paths = {e.sha256: cache.object_path(e.sha256) for e in todo}
    absent = [e for e in todo if cache.defect(e.sha256, e.size) is not None]
    if absent:  # a worker that did not ingest (another machine, a Ray node) fetches by URI and checks sha256
        paths.update(fetch_objects(absent, cache, make_s3_client(settings), settings.s3_max_concurrency))
    return compute_chunk_rows(chunk, palette_set_for(spec), paths)
