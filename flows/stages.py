"""Parallel stages of the train flow, each a flow that maps one task over its content-defined pieces.

Run a stage with ``tasks.task_runners.run_stage(stage, ...)``: inside the train flow it runs as part of the train
flow run on its settings-sized thread pool, or as a subflow on Ray when ``CANVASCRAFT_RAY_ADDRESS`` is set; on its
own it is a flow on that runner. ``tasks/task_runners.py`` says why.
"""

from __future__ import annotations

from prefect import flow, unmapped

from canvascraft.ingest import IngestReport
from canvascraft.outcomes import FeaturesOutcome, ReferenceOutcome
from canvascraft.pieces import largest_first
from canvascraft.preprocess import ShardSet
from canvascraft.spec import PipelineSpec
from tasks.evaluate import combine_fid_reference, fid_reference_chunk, plan_fid_reference
from tasks.features import materialize_features, plan_palettes_task
from tasks.palettes import palette_chunk
from tasks.preprocess import assemble_preprocess, find_preprocessed, plan_preprocess, preprocess_shard


@flow(name="preprocess")
def preprocess_stage(report: IngestReport, spec: PipelineSpec) -> ShardSet:
    """Brush every piece of the snapshot (one task run per piece) and publish the shard set."""
    lookup = find_preprocessed(report, spec, return_state=True)
    if (found := lookup.result()) is not None:
        return found.model_copy(update={"reuse": "cached"}) if lookup.name == "Cached" else found
    plan = plan_preprocess(report, spec)
    pieces = preprocess_shard.map(largest_first(plan), unmapped(spec))  # the longest first: workers finish together
    results = pieces.result()  # the first failed piece's own error fails the stage (no assembly of a partial set)
    return assemble_preprocess(report, spec, plan, results, wait_for=pieces)


@flow(name="palettes")
def palettes_stage(report: IngestReport, spec: PipelineSpec) -> FeaturesOutcome:
    """Palettes of every chunk's images missing offline (one task run per chunk), appended and materialized once."""
    plan = plan_palettes_task(report, spec)
    chunks = palette_chunk.map(plan.chunks, unmapped(spec))
    rows = chunks.result()  # the first failed chunk's own error fails the stage (nothing partial is appended)
    return materialize_features(report, spec, plan, rows, wait_for=chunks)


@flow(name="fid-reference")
def fid_reference_stage(spec: PipelineSpec, shards: ShardSet, kept_ids: list[str] | None) -> ReferenceOutcome:
    """Inception features of the evaluation's real images per chunk (one task run per chunk), combined into the
    reference statistics ``evaluate`` reads from the cache."""
    plan = plan_fid_reference(spec, shards, kept_ids)
    chunks = fid_reference_chunk.map(plan.chunks, plan.images, unmapped(spec))
    return combine_fid_reference(plan, chunks.result(), wait_for=chunks)
