"""``python -m bench.run --profile quick|full``: every stage against its bare baseline, written to docs/benchmarks.md.

Sections run in the order the numbers are cheapest to get (ingest, FID, features, training, orchestration, drift) and
the report is rewritten after each one, so an interrupted run still leaves a partial, marked-incomplete document.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

PROFILES = {
    # a few minutes on 2 loaded cores
    "quick": {
        "ingest_sizes": [200, 500, 1000, 1797],
        "ingest_repeats": 3,
        "ingest_large": 100,
        "feature_sizes": [200, 500, 1000],
        "feature_repeats": 2,
        "fid_images": 64,
        "fid_dims": 64,
        "fid_repeats": 3,
        "sqrtm_repeats": 1,
        "train_steps": 40,
        "train_trials": 3,
        "flow_pairs": 3,
        "demo_pairs": 1,
        "drift_sizes": [10_000, 100_000],
        "drift_repeats": 2,
        "memory_steps": 20,
        "memory_repeats": 1,
        "parallel_photos": 2000,
        "parallel_repeats": 3,
        "ddp_steps": 60,
        "ddp_repeats": 2,
    },
    # tens of minutes
    "full": {
        "ingest_sizes": [200, 500, 1000, 1797],
        "ingest_repeats": 5,
        "ingest_large": 500,
        "feature_sizes": [200, 500, 1000, 1797],
        "feature_repeats": 3,
        "fid_images": 128,
        "fid_dims": 2048,
        "fid_repeats": 3,
        "sqrtm_repeats": 3,
        "train_steps": 60,
        "train_trials": 5,
        "flow_pairs": 4,
        "demo_pairs": 2,
        "drift_sizes": [10_000, 100_000],
        "drift_repeats": 3,
        "memory_steps": 40,
        "memory_repeats": 2,
        "parallel_photos": 5000,
        "parallel_repeats": 5,
        "ddp_steps": 100,
        "ddp_repeats": 3,
    },
}
SECTIONS = ["ingest", "fid", "features", "training", "orchestration", "drift", "memory", "parallel", "ddp"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--out", default="docs/benchmarks.md")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args(argv)
    config = PROFILES[args.profile]
    wanted = args.only or SECTIONS

    from bench.common import REPO, isolate_environment

    root = Path(tempfile.mkdtemp(prefix="canvascraft-bench-"))
    isolate_environment(root)  # before prefect / canvascraft are imported

    from bench.common import Report, S3Server, load_average, machine_description

    command = "make bench" if os.environ.get("MAKELEVEL") else "python -m bench.run " + " ".join(sys.argv[1:])
    report = Report(REPO / args.out, command, args.profile, machine_description())
    print(f"bench: profile {args.profile}, temp {root}, load {report.machine['load_start']}", flush=True)
    s3 = S3Server()
    client = s3.client()
    bucket = "bench"
    client.create_bucket(Bucket=bucket)
    failures = []

    def section(name: str, fn) -> None:
        if name not in wanted:
            return
        started = time.perf_counter()
        print(f"bench: {name} ...", flush=True)
        try:
            fn()
        except Exception:  # one broken section must not lose the others
            failures.append(name)
            report.add(f"{name}: FAILED", [], "```\n" + traceback.format_exc()[-3000:] + "\n```")
            traceback.print_exc()
        print(f"bench: {name} done in {time.perf_counter() - started:.0f} s (load {load_average()})", flush=True)

    sources: dict[int, str] = {}
    try:

        def do_ingest() -> None:
            from bench import ingest

            rows = ingest.run(
                client, bucket, config["ingest_sizes"], config["ingest_repeats"], root, large=config["ingest_large"]
            )
            sources.update({n: f"s3://{bucket}/digits-{n}" for n in config["ingest_sizes"]})
            report.add(
                "Ingest (loopback S3: rclone serve s3)",
                rows,
                "Cold ingest into an empty cache vs boto3 downloading the same prefix to files with the same "
                "thread count; then a re-ingest with nothing changed vs a bare listing of the prefix.",
            )

        def do_fid() -> None:
            from bench import fid

            rows = fid.run(
                root, config["fid_images"], config["fid_dims"], config["fid_repeats"], config["sqrtm_repeats"]
            )
            report.add("FID", rows)

        def do_features() -> None:
            from bench import features, ingest

            if not sources:
                ingest.seed(client, bucket, config["feature_sizes"])
            srcs = {n: f"s3://{bucket}/digits-{n}" for n in config["feature_sizes"]}
            for n in config["feature_sizes"]:
                if n not in sources:
                    ingest.seed(client, bucket, [n])
            report.add(
                "Features (palettes + Feast, sqlite online store)",
                features.run(client, srcs, config["feature_repeats"], root),
            )

        def do_training() -> None:
            from bench import training

            rows, text = training.run(root, config["train_steps"], config["train_trials"])
            report.add("Training throughput (Ray Tune trial vs bare diffusers loop)", rows, text)

        def do_orchestration() -> None:
            from bench import orchestration

            rows, text = orchestration.run(client, bucket, root, config["flow_pairs"], config["demo_pairs"])
            report.add("Orchestration overhead (Prefect train flow vs plain Python)", rows, text)

        def do_drift() -> None:
            from bench import drift

            rows, text = drift.run(root, config["drift_sizes"], config["drift_repeats"])
            report.add("Drift", rows, text)

        def do_memory() -> None:
            from bench import memory

            rows, text = memory.run(root, config["memory_steps"], config["memory_repeats"])
            report.add("Training data memory (issue 14)", rows, text)

        def do_parallel() -> None:
            from bench import parallel_stages

            rows, text = parallel_stages.run(root, config["parallel_photos"], config["parallel_repeats"])
            report.add("Parallel stages (issue 14)", rows, text)

        def do_ddp() -> None:
            from bench import ddp

            rows, text = ddp.run(root, config["ddp_steps"], config["ddp_repeats"])
            report.add("Multi-worker trials (issue 14)", rows, text)

        for name, fn in [
            ("ingest", do_ingest),
            ("fid", do_fid),
            ("features", do_features),
            ("training", do_training),
            ("orchestration", do_orchestration),
            ("drift", do_drift),
            ("memory", do_memory),
            ("parallel", do_parallel),
            ("ddp", do_ddp),
        ]:
            section(name, fn)
    finally:
        s3.stop()
        try:
            import ray

            if ray.is_initialized():
                ray.shutdown()
        except Exception as exc:  # the report still gets written; say why Ray did not stop cleanly
            print(f"bench: ray shutdown failed: {exc!r}", file=sys.stderr, flush=True)
        report.machine["load_end"] = load_average()
        profiling = REPO / "bench" / "profiling.md"
        if profiling.is_file():
            report.extra = ["", profiling.read_text()]
        report.write(finished=True)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"bench: wrote {report.path}" + (f"; failed sections: {failures}" if failures else ""), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
