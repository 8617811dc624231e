"""Orchestration overhead: the whole ``train`` flow (Prefect, under one test server) vs the same canvascraft core
functions called in plain Python in the same order, on the same tiny spec (dcgan tiny), each run in a fresh home."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.common import Row, Sample, fresh_home, timed


def tiny_spec(source: str, name: str) -> dict[str, Any]:
    """The flow tests' spec (tests/spec_helpers.py): 8x8 digits, one palette, a 2-trial tiny DCGAN, FID 64-d N=32."""
    from tests.spec_helpers import tiny_dcgan_spec

    return {**tiny_dcgan_spec(name, source, name), "device": "cpu"}


def plain_train(spec: dict[str, Any]) -> dict[str, Any]:
    """flows/train.py with every @task replaced by the canvascraft core call it wraps (no Prefect at all)."""
    from canvascraft import tracking
    from canvascraft.artifact_root import artifact_root
    from canvascraft.brushes import BrushStack
    from canvascraft.evaluation.scores import FidScore
    from canvascraft.evaluation.stage import evaluate_checkpoint
    from canvascraft.features.stage import build_training_set, materialize_snapshot
    from canvascraft.ingest import ImageRules, SnapshotManifest, ingest
    from canvascraft.preprocess import preprocess
    from canvascraft.publishing import model_registry as registry
    from canvascraft.reports import ingest_markdown
    from canvascraft.settings import get_settings
    from canvascraft.spec import load_spec, with_extra_sources
    from canvascraft.storage import make_s3_client
    from canvascraft.tuning.search import run_search
    from canvascraft.tuning.trial_runs import log_trial_samples, trials_table

    settings = get_settings()
    pipeline = with_extra_sources(load_spec(spec), None)
    data = pipeline.data
    report = ingest([data.source, *data.extra_sources], make_s3_client(settings), settings.home / "cache",
                    ImageRules.from_spec(data), min_valid_count=data.min_valid_count,
                    min_valid_fraction=data.min_valid_fraction, max_workers=settings.s3_max_concurrency,
                    artifacts=artifact_root(settings))
    ingest_markdown(report)
    manifest = SnapshotManifest.load(report.manifest_path)
    shards = preprocess(manifest, settings.home / "cache", BrushStack.from_spec(pipeline.brushes),
                        artifact_root(settings), seed=pipeline.seed)
    features = materialize_snapshot(SnapshotManifest.load(report.manifest_path), pipeline, settings)
    selection = build_training_set(SnapshotManifest.load(report.manifest_path), pipeline, settings)
    parent = tracking.start_parent_run(settings, pipeline, report.dataset_version,
                                       {"canvascraft.dataset_version": report.dataset_version})
    tracking.configure(settings)
    result = run_search(pipeline, shards, selection.get("kept_ids_key"), settings, parent_run_id=parent,
                        dataset_version=report.dataset_version)
    log_trial_samples(result, parent, n=16, seed=pipeline.seed)
    trials_table(result.trials, pipeline.tuner.metric)
    tracking.log_to_run(parent, metrics={f"best_{pipeline.tuner.metric}": float(result.best_metrics[pipeline.tuner.metric]),
                                         "tune_wall_seconds": result.wall_seconds},
                        params={"best_hp": result.best_config.get("hp", {})})
    evaluation = evaluate_checkpoint(result.best_checkpoint, shards, selection["kept_image_ids"], pipeline, settings)
    score = FidScore.model_validate(evaluation["score"])
    tracking.log_to_run(parent, metrics={"fid": score.fid}, params={"fid_n": score.n, "fid_dims": score.dims},
                        artifacts=[Path(evaluation["grid"])], artifact_path="samples")
    name = pipeline.publish.registered_model
    tags = {"dataset_version": report.dataset_version, "feature_views": ",".join(features.get("feature_views", [])),
            "brush_stack_hash": shards.stack_key, "spec_hash": pipeline.spec_hash(),
            "code_version": registry.code_version(), "seed": str(pipeline.seed), "pipeline": pipeline.name,
            **registry.save_score_tags(score)}
    version = registry.log_model_version(name, result.best_checkpoint, parent, tags)
    outcome = registry.gate_and_alias(name, version, score, metric=pipeline.publish.gate.metric,
                                      margin=pipeline.publish.gate.margin, tag=pipeline.publish.tag,
                                      lock=registry.lock_for(settings.home, name))
    tracking.log_to_run(parent, tags={"registered_model": name, "registered_version": version})
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


def empty_flow_seconds(tasks: int) -> float:
    """Prefect's own floor: one flow calling ``tasks`` no-op tasks (no CanvasCraft code at all)."""
    from prefect import flow, task

    @task(name="noop")
    def noop(i: int) -> int:
        return i

    @flow(name="bench-empty")
    def empty() -> int:
        return sum(noop(i) for i in range(tasks))

    return timed(empty)[0]


def _pairs(label: str, make_spec: Any, source: str, root: Path, pairs: int) -> tuple[list[float], list[float]]:
    """Interleaved (flow, plain) runs of one spec, each in a fresh home; the order alternates per pair."""
    from flows.train import train

    flow_s, plain_s = [], []
    for index in range(pairs):
        order = ["flow", "plain"] if index % 2 == 0 else ["plain", "flow"]
        for variant in order:
            fresh_home(root, f"orchestration-{label}-{variant}")
            spec = make_spec(source, f"bench-orch-{label}-{variant}-{index}")
            if variant == "flow":
                seconds, result = timed(lambda: train(spec))
                assert result["publish"]["published"], result["publish"]
                flow_s.append(seconds)
            else:
                seconds, result = timed(lambda: plain_train(spec))
                plain_s.append(seconds)
            print(f"bench: orchestration {label} pair {index} {variant}: {seconds:.1f} s", flush=True)
    return flow_s, plain_s


def _rows(figure: str, size: str, flow_s: list[float], plain_s: list[float]) -> list[Row]:
    overhead = [f - p for f, p in zip(flow_s, plain_s)]
    pct = [(f - p) / p for f, p in zip(flow_s, plain_s)]
    ratio = Sample(flow_s).median / Sample(plain_s).median - 1
    return [
        Row(figure, size, "s", Sample(flow_s), Sample(plain_s), "same core functions in plain Python", ratio,
            (min(pct), max(pct)), ratio_label="overhead (flow / plain - 1)", target="<= 5%", digits=2),
        Row("orchestration fixed cost", size, "s", Sample(overhead), None, "", digits=2,
            note="flow minus plain, per interleaved pair"),
    ]


def run(client: Any, bucket: str, root: Path, pairs: int, demo_pairs: int = 1,
        n_objects: int = 200) -> tuple[list[Row], str]:
    from bench.ingest import seed
    from canvascraft.settings import get_settings
    from canvascraft.tuning.search import connect_ray

    seed(client, bucket, [n_objects, 1797])
    source = f"s3://{bucket}/digits-{n_objects}"
    fresh_home(root, "orchestration-warmup")
    connect_ray(get_settings())  # Ray start is paid once per process by both variants: keep it out of the pairs
    from prefect.testing.utilities import prefect_test_harness

    harness_started = time.perf_counter()
    with prefect_test_harness(server_startup_timeout=180):
        harness_seconds = time.perf_counter() - harness_started
        # One unmeasured pair first: the first call of each variant imports and initialises libraries (Feast,
        # MLflow's store, torch-fidelity) that the other variant would then get for free.
        _pairs("warmup", tiny_spec, source, root, 1)
        empty = [empty_flow_seconds(10) for _ in range(3)]

        flow_s, plain_s = _pairs("tiny", tiny_spec, source, root, pairs)
        demo_flow, demo_plain = (_pairs("demo", demo_spec, f"s3://{bucket}/digits-1797", root, demo_pairs)
                                 if demo_pairs else ([], []))
    rows = _rows("train flow wall time", f"{n_objects} digits, tiny DCGAN x2 trials, FID 64-d N=32", flow_s, plain_s)
    if demo_flow:
        rows += _rows("train flow wall time", "demo spec: 1797 digits, DDPM 16x16 x2 trials, FID 64-d N=200",
                      demo_flow, demo_plain)
    rows.append(Row("Prefect floor: empty flow + 10 no-op tasks", "per flow run", "s", Sample(empty), None, "",
                    digits=2, note="Prefect's own cost with no CanvasCraft code: mostly end-of-run waits, e.g. for "
                                   "the heartbeat thread, which sleeps in 1 s steps (prefect/flow_engine.py "
                                   "_send_heartbeats); a flow with 0 tasks costs the same"))

    text = (f"Temporary Prefect test server start (not counted above; a deployment talks to a running server): "
            f"{harness_seconds:.1f} s. Ray was started once before the pairs and one unmeasured warm-up pair ran "
            f"first; each run used a fresh CANVASCRAFT_HOME (empty caches, Feast store, MLflow db). Pairs alternate "
            f"which variant runs first. The flow's extra work beside Prefect's floor is CanvasCraft's observability "
            f"(progress, ingest, trials, evaluation and summary artifacts; the metrics push) and the server's CPU "
            f"on the same 2 cores.")
    return rows, text
