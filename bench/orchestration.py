"""Orchestration overhead: the whole ``train`` flow (Prefect, under one test server) vs the same canvascraft core
functions called in plain Python in the same order, on the same tiny spec (dcgan tiny), each run in a fresh home
with a Ray started for that home; Prefect's own floor (empty flows) is measured between the pairs.

Where the difference goes is measured too: the flow's stage timings (from its task runs) against the plain run's
at the same boundaries, and the time outside every stage (flow start, hooks, end-of-run waits).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Row, Sample, fresh_home, timed
from bench.prefect_floor import floor_flows

STAGES = ["ingest", "preprocess", "features", "training_set", "tune", "evaluate", "publish"]


def tiny_spec(source: str, name: str) -> dict[str, Any]:
    """The flow tests' spec (tests/spec_helpers.py): 8x8 digits, one palette, a 2-trial tiny DCGAN, FID 64-d N=32."""
    from tests.spec_helpers import tiny_dcgan_spec

    return {**tiny_dcgan_spec(name, source, name), "device": "cpu"}


class StageClock:
    """Stage wall times of the plain run at the boundaries of the flow's stages (tasks/stage_timings.py)."""

    def __init__(self) -> None:
        self.mark = time.monotonic()
        self.durations: dict[str, float] = {}

    def done(self, stage: str) -> None:
        """Close ``stage`` (time since the previous mark)."""
        now = time.monotonic()
        self.durations[stage] = now - self.mark
        self.mark = now


def plain_train(spec: dict[str, Any], clock: StageClock | None = None) -> dict[str, Any]:
    """flows/train.py with every task and stage subflow replaced by the canvascraft core calls they wrap, the parallel
    stages on the same number of threads (``CANVASCRAFT_STAGE_WORKERS``, default the CPU count), no Prefect at all."""
    from canvascraft import tracking
    from canvascraft.artifact_root import artifact_root
    from canvascraft.brushes import BrushStack
    from canvascraft.evaluation.reference_chunks import chunk_features, combine_reference
    from canvascraft.evaluation.scores import ReferenceStatsCache
    from canvascraft.evaluation.stage import evaluate_checkpoint, plan_reference, reference_extractor
    from canvascraft.features.stage import build_training_set, materialize_snapshot
    from canvascraft.hashing import stable_hash
    from canvascraft.ingest import ImageRules, ingest
    from canvascraft.ingest.snapshots import load_manifest
    from canvascraft.preprocess import preprocess
    from canvascraft.publishing import model_registry as registry
    from canvascraft.reports import ingest_markdown
    from canvascraft.settings import get_settings
    from canvascraft.spec import load_spec, with_extra_sources
    from canvascraft.storage import make_s3_client
    from canvascraft.tuning.search import run_search
    from canvascraft.tuning.trial_runs import log_trial_samples, trials_table

    clock = clock or StageClock()
    settings = get_settings()
    workers = settings.stage_workers or os.cpu_count() or 1
    pipeline = with_extra_sources(load_spec(spec), None)
    clock.mark = time.monotonic()  # the flow's clock starts after resolve-spec too
    data = pipeline.data
    artifacts = artifact_root(settings)
    report = ingest(
        [data.source, *data.extra_sources],
        make_s3_client(settings),
        settings.home / "cache",
        ImageRules.from_spec(data),
        min_valid_count=data.min_valid_count,
        min_valid_fraction=data.min_valid_fraction,
        max_workers=settings.s3_max_concurrency,
        artifacts=artifacts,
    )
    clock.done("ingest")
    ingest_markdown(report)
    manifest = load_manifest(report.dataset_version, artifacts)
    shards = preprocess(
        manifest,
        settings.home / "cache",
        BrushStack.from_spec(pipeline.brushes),
        artifacts,
        seed=pipeline.seed,
        max_workers=workers,
    )
    clock.done("preprocess")
    features = materialize_snapshot(manifest, pipeline, settings, max_workers=workers)
    clock.done("features")
    selection = build_training_set(manifest, pipeline, settings)
    clock.done("training_set")
    parent = tracking.start_parent_run(
        settings, pipeline, report.dataset_version, {"canvascraft.dataset_version": report.dataset_version}
    )
    tracking.configure(settings)
    result = run_search(
        pipeline,
        shards,
        selection.kept_ids_key,
        settings,
        parent_run_id=parent,
        dataset_version=report.dataset_version,
    )
    log_trial_samples(result, parent, n=16, seed=pipeline.seed)
    trials_table(result.trials, pipeline.tuner.metric)
    best = result.best_metrics.get(pipeline.tuner.metric)
    tracking.log_to_run(
        parent,
        metrics={
            f"best_{pipeline.tuner.metric}": float(best) if best is not None else 0.0,
            "tune_wall_seconds": result.wall_seconds,
        },
        params={"best_hp": result.best_config.get("hp", {})},
    )
    clock.done("tune")
    plan = plan_reference(shards, selection.kept_image_ids, pipeline, settings)
    if not plan.found:  # the fid-reference stage: features per chunk on the stage's threads, then mu/sigma
        from concurrent.futures import ThreadPoolExecutor

        extractor = reference_extractor(pipeline, settings)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(
                pool.map(
                    lambda c_i: chunk_features(c_i[0], c_i[1], extractor, artifacts),
                    zip(plan.chunks, plan.images, strict=True),
                )
            )
        combine_reference(plan.key, plan.chunks, artifacts, ReferenceStatsCache.for_artifacts(artifacts))
    evaluation = evaluate_checkpoint(result.best_checkpoint, shards, selection.kept_image_ids, pipeline, settings)
    score = evaluation.score
    tracking.log_to_run(
        parent,
        metrics={"fid": score.fid},
        params={"fid_n": score.n, "fid_dims": score.dims},
        artifacts=[Path(evaluation.grid)],
        artifact_path="samples",
    )
    clock.done("evaluate")
    name = pipeline.publish.registered_model
    tags = {
        "dataset_version": report.dataset_version,
        "feature_views": ",".join(features.feature_views),
        "brush_stack_hash": shards.stack_key,
        "spec_hash": pipeline.spec_hash(),
        "code_version": registry.code_version(),
        "seed": str(pipeline.seed),
        "pipeline": pipeline.name,
        **registry.save_score_tags(score),
    }
    version = registry.publish_version(
        name,
        result.best_checkpoint,
        parent,
        tags,
        publish_key=stable_hash({"run": parent, "checkpoint": result.best_checkpoint}),
    )
    gate = pipeline.publish.gate
    outcome = registry.gate_and_alias(
        name,
        version,
        score,
        metric=gate.metric,
        margin=gate.margin,
        tag=pipeline.publish.tag,
        lock=registry.lock_for(settings.home, name),
        on_unusable=gate.on_unusable_champion,
    )
    tracking.log_to_run(parent, tags={"registered_model": name, "registered_version": version})
    clock.done("publish")
    return {"valid": report.valid, "publish": outcome, "fid": score.fid}


def demo_spec(source: str, name: str) -> dict[str, Any]:
    """The demo's spec (pipelines/digits-quick.yaml: 16x16 DDPM x2 trials, FID 64-d N=200) on ``source``."""
    import yaml

    from bench.common import REPO

    spec = yaml.safe_load((REPO / "pipelines" / "digits-quick.yaml").read_text())
    spec.update(name=name, device="cpu")
    spec["data"]["source"] = source
    spec["publish"]["registered_model"] = name
    return spec


# -- the pairs --------------------------------------------------------------------------------------------------------


def fresh_run(root: Path, name: str) -> None:
    """A fresh CANVASCRAFT_HOME and a local Ray started for it, before the timing.

    ``connect_ray`` pins the driver's CANVASCRAFT_HOME and artifact root into Ray's runtime env at ``ray.init``, and
    an initialised Ray is reused: trials of a second run in a new home would read the first run's root (its shards
    are not there). Each run therefore gets its own Ray; every CPU runs a task first, so the workers Ray pre-starts
    are up before the clock starts.
    """
    import ray

    from canvascraft.settings import get_settings
    from canvascraft.tuning.search import connect_ray

    if ray.is_initialized():
        ray.shutdown()
    fresh_home(root, name)
    connect_ray(get_settings())
    cpus = int(ray.cluster_resources().get("CPU", 1))
    ray.get([ray.remote(num_cpus=1)(lambda: None).remote() for _ in range(cpus)])


def _pairs(
    label: str, make_spec: Any, source: str, root: Path, pairs: int, between: Callable[[], None] | None = None
) -> tuple[list[float], list[float], list[dict], list[dict]]:
    """Interleaved (flow, plain) runs of one spec, each in a fresh home and Ray; the order alternates per pair."""
    from flows.train import train
    from tasks.stage_timings import read_stage_timings

    flow_s, plain_s, flow_stages, plain_stages = [], [], [], []
    for index in range(pairs):
        order = ["flow", "plain"] if index % 2 == 0 else ["plain", "flow"]
        for variant in order:
            fresh_run(root, f"orchestration-{label}-{variant}")
            spec = make_spec(source, f"bench-orch-{label}-{variant}-{index}")
            if variant == "flow":
                seconds, state = timed(lambda spec=spec: train(spec, return_state=True))
                result = state.result()
                if result.publish is None or not result.publish.published:
                    raise RuntimeError(f"train flow did not publish: {result.publish}")
                flow_s.append(seconds)
                flow_stages.append(read_stage_timings(state.state_details.flow_run_id))
            else:
                clock = StageClock()
                seconds, _ = timed(lambda spec=spec, clock=clock: plain_train(spec, clock))
                plain_s.append(seconds)
                plain_stages.append(clock.durations)
            print(f"bench: orchestration {label} pair {index} {variant}: {seconds:.1f} s", flush=True)
        if between:
            between()
    return flow_s, plain_s, flow_stages, plain_stages


def _rows(figure: str, size: str, flow_s: list[float], plain_s: list[float]) -> list[Row]:
    overhead = [f - p for f, p in zip(flow_s, plain_s, strict=True)]
    pct = [(f - p) / p for f, p in zip(flow_s, plain_s, strict=True)]
    ratio = Sample(flow_s).median / Sample(plain_s).median - 1
    return [
        Row(
            figure,
            size,
            "s",
            Sample(flow_s),
            Sample(plain_s),
            "same core functions in plain Python",
            ratio,
            (min(pct), max(pct)),
            ratio_label="overhead (flow / plain - 1)",
            target="<= 5%",
            digits=2,
        ),
        Row(
            "orchestration fixed cost",
            size,
            "s",
            Sample(overhead),
            None,
            "",
            digits=2,
            note="flow minus plain, per interleaved pair",
        ),
    ]


def _stage_rows(
    size: str, flow_s: list[float], plain_s: list[float], flow_stages: list[dict], plain_stages: list[dict]
) -> list[Row]:
    """Flow vs plain per stage (same boundaries), and the flow's time outside every stage."""
    rows = []
    for stage in STAGES:
        f = [s.get(stage, 0.0) for s in flow_stages]
        p = [s.get(stage, 0.0) for s in plain_stages]
        rows.append(Row(f"stage {stage}", size, "s", Sample(f), Sample(p), "plain", digits=2))
    outside_flow = [total - sum(s.values()) for total, s in zip(flow_s, flow_stages, strict=True)]
    outside_plain = [total - sum(s.values()) for total, s in zip(plain_s, plain_stages, strict=True)]
    rows.append(
        Row(
            "outside the stages",
            size,
            "s",
            Sample(outside_flow),
            Sample(outside_plain),
            "plain",
            digits=2,
            note="flow: flow-run creation, resolve-spec, the report tasks, the state hooks (metrics push, "
            "summary artifact), end-of-run waits; plain: load_spec",
        )
    )
    return rows


def run(
    client: Any, bucket: str, root: Path, pairs: int, demo_pairs: int = 1, n_objects: int = 200
) -> tuple[list[Row], str]:
    from bench.ingest import seed

    seed(client, bucket, [n_objects, 1797])
    source = f"s3://{bucket}/digits-{n_objects}"
    from prefect.testing.utilities import prefect_test_harness

    harness_started = time.perf_counter()
    with prefect_test_harness(server_startup_timeout=180):
        harness_seconds = time.perf_counter() - harness_started
        floors = floor_flows()
        floor_s: dict[str, list[float]] = {name: [] for name in floors}

        def measure_floors() -> None:
            for name, fn in floors.items():
                floor_s[name].append(timed(fn)[0])

        # One unmeasured pair first: the first call of each variant imports and initialises libraries (Feast,
        # MLflow's store, torch-fidelity) that the other variant would then get for free.
        _pairs("warmup", tiny_spec, source, root, 1)
        for fn in floors.values():
            fn()
        flow_s, plain_s, flow_stages, plain_stages = _pairs("tiny", tiny_spec, source, root, pairs, measure_floors)
        demo = (
            _pairs("demo", demo_spec, f"s3://{bucket}/digits-1797", root, demo_pairs)
            if demo_pairs
            else ([], [], [], [])
        )
    import ray

    if ray.is_initialized():
        ray.shutdown()
    size = f"{n_objects} digits, tiny DCGAN x2 trials, FID 64-d N=32"
    rows = _rows("train flow wall time", size, flow_s, plain_s)
    if demo[0]:
        rows += _rows(
            "train flow wall time", "demo spec: 1797 digits, DDPM 16x16 x2 trials, FID 64-d N=200", demo[0], demo[1]
        )
    for name, values in floor_s.items():
        rows.append(Row(f"Prefect floor: {name}", "per flow run", "s", Sample(values), None, "", digits=2))
    rows[-len(floor_s)].note = (
        "no CanvasCraft code; heartbeats on is Prefect's default (kept: "
        "deployments/automations/crash-zombie-runs.yaml); at the end of every flow run, "
        "subflows included, the engine joins its heartbeat thread, which sleeps in 1 s steps "
        "(prefect/flow_engine.py _send_heartbeats)"
    )
    rows[-2].note = (
        "without those joins the next subflow's writes meet the SQLite test server still busy: it "
        "answers 503 (database locked) and Prefect's client retries after ~2 s (its debug log)"
    )
    rows += _stage_rows(size, flow_s, plain_s, flow_stages, plain_stages)
    text = (
        f"Temporary Prefect test server start (not counted above; a deployment talks to a running server): "
        f"{harness_seconds:.1f} s. One unmeasured warm-up pair ran first; each run used a fresh CANVASCRAFT_HOME "
        f"(empty caches, Feast store, MLflow db, artifact root) and its own local Ray, started (and every CPU run "
        f"once) before the clock; pairs alternate which variant runs first; the floor flows ran after each pair. "
        f"The flow's stage rows are the spans of each stage's task runs (tasks/stage_timings.py); the plain run "
        f"marks the same boundaries. The Prefect test server shares the same 2 cores."
    )
    return rows, text
