"""Remove each safety mechanism once and check that its test fails: ``python -m tests.mutations [NAME...] [--slow]``.

Each mutation replaces one exact snippet of product code (the mechanism) with a version without it, runs the tests
that guard the mechanism, expects them to FAIL, and restores the file whatever happens. A mutation whose tests
still pass is a test that cannot fail: the script exits non-zero and names it. The table in docs/testing.md lists
the same mechanisms; ``--slow`` adds those whose guarding test needs the real Prefect server (minutes each).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    """One mechanism removed: where, the exact snippet and its replacement, and the tests that must fail."""

    name: str
    path: str
    original: str
    mutant: str
    tests: tuple[str, ...]
    slow: bool = False


MUTATIONS = (
    Mutation(
        "quarantine-report",
        "canvascraft/ingest/ingest.py",
        "QuarantineEntry(uri=full_uri, key=key, reason=reason, size=size, sha256=sha), downloaded)",
        "None, downloaded)",
        ("tests/canvascraft/ingest/test_ingest_s3.py::test_good_and_bad_objects",),
    ),
    Mutation(
        "quarantine-keeps-bytes",
        "canvascraft/ingest/ingest.py",
        "        cache.put(sha, data, quarantined=rejected)  #",
        "        None if rejected else cache.put(sha, data, quarantined=rejected)  #",
        ("tests/canvascraft/ingest/test_ingest_s3.py::test_good_and_bad_objects",),
    ),
    Mutation(
        "secret-masking-uri",
        "canvascraft/settings.py",
        'return f"{scheme}://{user}:****@{host}"',
        'return f"{scheme}://{creds}@{host}"',
        ("tests/canvascraft/test_settings.py::test_mlflow_password_is_masked",),
    ),
    Mutation(
        "secret-masking-s3-key",
        "canvascraft/settings.py",
        '"aws_secret_access_key": "****"}',
        '"aws_secret_access_key": creds["secret_access_key"]}',
        ("tests/test_cli.py::test_config_show_masks_secrets",),
    ),
    Mutation(
        "webhook-secret-redaction",
        "tasks/notify.py",
        "            redact(str(exc), secrets + _env_secrets(settings)),",
        "            str(exc),",
        ("tests/tasks/test_notify.py::test_webhook_secret_never_reaches_logs_artifacts_or_mlflow",),
    ),
    Mutation(
        "comparability-key-n",
        "canvascraft/evaluation/score_records.py",
        "return (self.n, self.n_real, self.dims,",
        "return (None, self.n_real, self.dims,",
        (
            "tests/canvascraft/evaluation/test_scores.py::test_fid_scores_compare_only_on_equal_settings",
            "tests/canvascraft/publishing/test_gate.py::test_decide_rules",
        ),
    ),
    Mutation(
        "comparability-key-classifier",
        "canvascraft/evaluation/score_records.py",
        "classifier = self.classifier.comparability_key() if self.classifier is not None else None",
        "classifier = None",
        ("tests/canvascraft/publishing/test_gate.py::test_classifier_scores_compare_only_under_the_same_classifier",),
    ),
    Mutation(
        "classifier-coverage-guard",
        "canvascraft/publishing/gate.py",
        "and candidate.classifier.coverage < champion.classifier.coverage",
        "and candidate.classifier.coverage < 0",
        ("tests/canvascraft/publishing/test_gate.py::test_classifier_score_never_promotes_fewer_classes",),
    ),
    Mutation(
        "shard-cache-key-seed",
        "canvascraft/preprocess.py",
        '"seed": seed if random else None',
        '"seed": None',
        ("tests/canvascraft/test_preprocess.py::test_key_depends_on_stack_and_on_seed_only_for_random_stacks",),
    ),
    # Random brushes share torch's global generator: without the lock, threads take each other's seeds.
    Mutation(
        "brush-rng-lock",
        "canvascraft/brushes/base.py",
        "with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):",
        "with torch.random.fork_rng(devices=[]):",
        ("tests/canvascraft/brushes/test_brush_threads.py::test_random_stack_is_deterministic_across_threads",),
    ),
    # A piece's key names its images: keyed by position instead, one new image would shift every later piece.
    Mutation(
        "piece-key-content",
        "canvascraft/pieces.py",
        "key=piece_key(stack_key, [e.sha256 for e in run])",
        "key=piece_key(stack_key, [str(i)])",
        ("tests/canvascraft/test_pieces.py::test_piece_key_names_stack_and_content",),
    ),
    # The file name is only a digest; the full key stored in the file and checked on read is the mechanism.
    Mutation(
        "reference-stats-key",
        "canvascraft/evaluation/scores.py",
        'if stored_key != canonical_json(key.model_dump(mode="json")) or (need_features and features is None):',
        "if need_features and features is None:",
        (
            "tests/canvascraft/evaluation/test_scores.py::test_reference_cache_treats_foreign_or_corrupt_files_as_misses",
            "tests/canvascraft/evaluation/test_scores.py::test_reference_cache_is_keyed_by_every_field",
        ),
    ),
    Mutation(
        "retry-on-s3-outage",
        "tasks/retry_policy.py",
        "return status >= 500 or code in RETRYABLE_S3_CODES",
        "return False",
        ("tests/tasks/test_task_retries.py::test_s3_503_is_retried_and_the_ingest_succeeds",),
    ),
    Mutation(
        "no-retry-on-refusal",
        "tasks/retry_policy.py",
        "return _client_error_is_transient(cause)",
        "return True",
        (
            "tests/tasks/test_task_retries.py::test_s3_access_denied_is_not_retried",
            "tests/tasks/test_task_retries.py::test_missing_bucket_is_not_retried",
        ),
    ),
    Mutation(
        "storm-limit",
        "prefect.yaml",
        "    within: 900                    # cooldown",
        "    within: 0                      # cooldown",
        ("tests/flows/test_drift_automation.py::test_the_retraining_loop_closes",),
        slow=True,
    ),
    Mutation(
        "gate-lock",
        "canvascraft/publishing/model_registry.py",
        "    with lock():\n        client.set_registered_model_alias(name, tag, version)",
        "    with contextlib.nullcontext():\n        client.set_registered_model_alias(name, tag, version)",
        ("tests/flows/test_two_machines.py::test_concurrent_publishes_from_two_machines",),
        slow=True,
    ),
)


def run(mutation: Mutation) -> tuple[bool, float, str]:
    """Apply, run the guarding tests, restore; True when a test failed (pytest exit 1: the mutation was caught)."""
    path = ROOT / mutation.path
    source = path.read_text()
    if source.count(mutation.original) != 1:
        raise SystemExit(
            f"{mutation.name}: the snippet to mutate occurs {source.count(mutation.original)} times in "
            f"{mutation.path} (expected 1); update tests/mutations.py"
        )
    started = time.monotonic()
    try:
        path.write_text(source.replace(mutation.original, mutation.mutant))
        marker = ["-m", "prefect_server"] if mutation.slow else []
        outcome = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *marker, *mutation.tests],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        path.write_text(source)
    lines = outcome.stdout.strip().splitlines()
    if outcome.returncode not in (0, 1):  # usage error, nothing collected, internal error: not a verdict
        raise SystemExit(
            f"{mutation.name}: pytest exited {outcome.returncode}: {lines[-1] if lines else outcome.stderr}"
        )
    return outcome.returncode == 1, time.monotonic() - started, lines[-1] if lines else ""


def main() -> int:
    """Run the selected mutations and print which tests caught each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", help=f"mutations to run (default: all fast ones): {', '.join(m.name for m in MUTATIONS)}"
    )
    parser.add_argument("--slow", action="store_true", help="also the mutations guarded by real-server tests")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if (m.name in args.names if args.names else (args.slow or not m.slow))]
    survived = []
    for mutation in chosen:
        caught, seconds, summary = run(mutation)
        print(f"{'caught  ' if caught else 'SURVIVED'} {mutation.name:30s} {seconds:6.1f}s  {summary}")
        print(f"         {', '.join(mutation.tests)}")
        if not caught:
            survived.append(mutation.name)
    if survived:
        print(f"mutations no test caught: {', '.join(survived)}")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
