"""Register a model version with lineage, promote it through the gate, roll back, promote by hand, list.

Aliases: ``@champion`` (serving), ``@previous`` (the champion it replaced; the rollback target) and the spec's
publish tag (e.g. ``@latest``) moved on every publish. The read-decide-write of the gate runs under a lock so two
publishes at once leave exactly one champion.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from canvascraft.errors import CanvasCraftError
from canvascraft.evaluation.scores import FidScore
from canvascraft.publishing.pyfunc_model import GeneratorModel

CHAMPION, PREVIOUS = "champion", "previous"
SCORE_TAG = "canvascraft.score"  # JSON of the FidScore: the comparability keys travel with the version


class RegistryError(CanvasCraftError):
    """A registry operation cannot be done (no previous champion, unknown version, ...)."""


def code_version(root: Path | None = None) -> str:
    """The git commit of the code when available, else 'unknown'."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# What the registered generator imports when served (GeneratorModel -> canvascraft trainers -> torch/diffusers).
# Stated explicitly: without ``pip_requirements`` MLflow infers them by loading the model in a fresh Python
# subprocess, which took ~10 s of an ~37 s quick train flow here (bench/: docs/benchmarks.md, "Profiling").
MODEL_REQUIREMENTS = ("mlflow", "canvascraft", "cloudpickle", "numpy", "torch", "diffusers", "safetensors")


def model_requirements() -> list[str]:
    """``name==version`` of the installed packages the served generator needs (name alone when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    pinned = []
    for name in MODEL_REQUIREMENTS:
        try:
            pinned.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pinned.append(name)
    return pinned


def log_model_version(registered_model: str, checkpoint: str, run_id: str, tags: dict[str, str]) -> str:
    """Log the pyfunc (checkpoint folder as artifact) in ``run_id``, register a new version with tags; return it."""
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(name="generator", python_model=GeneratorModel(),
                                       artifacts={"checkpoint": checkpoint}, tags=tags,
                                       pip_requirements=model_requirements())
    version = mlflow.register_model(info.model_uri, registered_model, tags=tags)
    return str(version.version)


def _score_of(client: MlflowClient, name: str, version: str) -> FidScore | None:
    """The FidScore stored on a version (None when it has none)."""
    raw = client.get_model_version(name, version).tags.get(SCORE_TAG)
    return FidScore.model_validate_json(raw) if raw else None


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """Version number behind an alias, or None."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def decide(candidate: FidScore, champion: FidScore | None, metric: str, margin: float) -> tuple[bool, str]:
    """The promotion gate: promote the first version; else only a comparable score better by ``margin``."""
    if champion is None:
        return True, "first version with a score: promoted"
    if not candidate.comparable_with(champion):
        diff = candidate.incomparable_fields(champion)
        return False, f"not comparable with the champion (differs in {', '.join(sorted(diff))}): not promoted"
    new, old = getattr(candidate, metric), getattr(champion, metric)
    if new is None or old is None:
        return False, f"{metric} missing on one side: not promoted"
    if new < old - margin:  # lower is better for FID and KID
        return True, f"{metric} {new:.4f} beats champion's {old:.4f} by more than margin {margin}: promoted"
    return False, f"{metric} {new:.4f} does not beat champion's {old:.4f} by margin {margin}: not promoted"


def gate_and_alias(
    name: str, version: str, score: FidScore, *, metric: str, margin: float, tag: str,
    lock: Callable[[], contextlib.AbstractContextManager[Any]],
) -> dict[str, Any]:
    """Set the publish tag alias; promote to champion through the gate (under ``lock``); return the outcome."""
    client = MlflowClient()
    with lock():
        client.set_registered_model_alias(name, tag, version)
        current = _alias_version(client, name, CHAMPION)
        champion_score = _score_of(client, name, current) if current else None
        promote, reason = decide(score, champion_score, metric, margin)
        if promote:
            if current:
                client.set_registered_model_alias(name, PREVIOUS, current)
            client.set_registered_model_alias(name, CHAMPION, version)
    return {"version": version, "promoted": promote, "reason": reason, "previous_champion": current,
            "aliases": aliases_of(name, version)}


def aliases_of(name: str, version: str) -> list[str]:
    """Aliases pointing at a version (read via get_model_version: search results carry none)."""
    return sorted(MlflowClient().get_model_version(name, version).aliases)


def rollback(name: str, lock: Callable[[], contextlib.AbstractContextManager[Any]]) -> dict[str, Any]:
    """Move ``@champion`` back to ``@previous``; refuse clearly when there is none."""
    client = MlflowClient()
    with lock():
        previous = _alias_version(client, name, PREVIOUS)
        current = _alias_version(client, name, CHAMPION)
        if previous is None:
            raise RegistryError(f"model {name!r}: no @{PREVIOUS} version to roll back to (champion is v{current})")
        client.set_registered_model_alias(name, CHAMPION, previous)
        client.delete_registered_model_alias(name, PREVIOUS)
        if current:
            client.set_model_version_tag(name, current, "canvascraft.rolled_back", "true")
    return {"champion": previous, "replaced": current}


def promote(name: str, version: str, lock: Callable[[], contextlib.AbstractContextManager[Any]]) -> dict[str, Any]:
    """Make ``version`` the champion by hand (the old champion becomes @previous)."""
    client = MlflowClient()
    try:
        client.get_model_version(name, version)
    except MlflowException:
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
        raise RegistryError(f"model {name!r} has no version {version}; allowed values: {versions}") from None
    with lock():
        current = _alias_version(client, name, CHAMPION)
        if current and current != version:
            client.set_registered_model_alias(name, PREVIOUS, current)
        client.set_registered_model_alias(name, CHAMPION, version)
    return {"champion": version, "previous": current}


def list_versions(name: str) -> list[dict[str, Any]]:
    """Every version with aliases, scores and lineage tags, newest first."""
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        raise RegistryError(f"model {name!r}: {exc}") from None
    if not versions:
        names = sorted(m.name for m in client.search_registered_models())
        raise RegistryError(f"no registered model {name!r}; allowed values: {', '.join(names) or '(none)'}")
    rows = []
    for v in sorted(versions, key=lambda v: int(v.version), reverse=True):
        full = client.get_model_version(name, v.version)
        score = json.loads(full.tags.get(SCORE_TAG, "null") or "null")
        rows.append({"version": str(v.version), "aliases": sorted(full.aliases), "score": score,
                     "tags": {k: val for k, val in full.tags.items() if k != SCORE_TAG}, "run_id": full.run_id})
    return rows


def resolve_uri(reference: str) -> str:
    """``NAME``, ``NAME@ALIAS`` or ``NAME/VERSION`` -> ``models:/...`` (default alias: champion)."""
    if "@" in reference:
        name, alias = reference.split("@", 1)
        return f"models:/{name}@{alias}"
    if "/" in reference:
        name, version = reference.split("/", 1)
        return f"models:/{name}/{version}"
    return f"models:/{reference}@{CHAMPION}"


def generate(reference: str, n: int, seed: int) -> Any:
    """Load a registered model and generate ``n`` images (uint8 N x H x W x C)."""
    try:
        model = mlflow.pyfunc.load_model(resolve_uri(reference))
    except MlflowException as exc:
        raise RegistryError(f"cannot load {reference!r}: {exc}") from None
    return model.predict({"n": n, "seed": seed})


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An inter-process lock on one machine (the local stack); clusters use Prefect's global concurrency too."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path), timeout=120):
        yield


def lock_for(home: Path, name: str) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """A lock factory for the gate of one registered model."""
    return lambda: file_lock(home / "locks" / f"registry-{name}.lock")


def save_score_tags(score: FidScore) -> dict[str, str]:
    """Tags that carry a score and its comparability keys on the version."""
    return {SCORE_TAG: score.model_dump_json(), "fid": f"{score.fid:.6f}",
            "kid_mean": "" if score.kid_mean is None else f"{score.kid_mean:.6f}",
            "fid_n": str(score.n), "fid_dims": str(score.dims), "fid_weights_sha256": score.weights_sha256,
            "fid_resize": score.resize}


def write_grid_png(images_nhwc: Any, out: Path) -> Path:
    """Save generated NHWC uint8 images as a PNG grid."""
    import torch

    from canvascraft.sampling import save_grid

    return save_grid(torch.as_tensor(images_nhwc).permute(0, 3, 1, 2), out)


