"""Register a model version with lineage (once per publish), promote it through the gate, roll back, promote, list.

Aliases: ``@champion`` (serving), ``@previous`` (the champion it replaced; the rollback target) and the spec's
publish tag (e.g. ``@latest``) moved on every publish. The read-decide-write of the gate runs under a lock so two
publishes at once leave exactly one champion.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from canvascraft.errors import CanvasCraftError
from canvascraft.evaluation.score_records import FidScore, GateMetric
from canvascraft.outcomes import GateOutcome, RegisteredVersion
from canvascraft.publishing.gate import GateVerdict, Rescorer, judge, rescore_key
from canvascraft.publishing.pyfunc_model import GeneratorModel

CHAMPION, PREVIOUS = "champion", "previous"
SCORE_TAG = "canvascraft.score"  # JSON of the FidScore: the comparability keys travel with the version
VERDICT_TAG = "canvascraft.gate"  # JSON of the GateVerdict: both scores, their keys, the decision
RESCORE_TAG_PREFIX = "canvascraft.rescore."  # + rescore_key: the champion's score on a candidate's terms
PUBLISH_KEY_TAG = "publish_key"  # one version per (flow run, checkpoint): retried publishes find it


class RegistryError(CanvasCraftError):
    """A registry operation cannot be done (no previous champion, unknown version, ...)."""


def code_version(root: Path | None = None) -> str:
    """The git commit of the code when available, else 'unknown'."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
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


class _OwnModelPickleNotice(logging.Filter):
    """Drop MLflow's CloudPickle caution for the generator CanvasCraft itself defines (GeneratorModel is pickled by
    reference to this package's class, never arbitrary user code); other pyfunc warnings pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Passing a Python object as `python_model`")


logging.getLogger("mlflow.pyfunc").addFilter(_OwnModelPickleNotice())


def log_model_version(registered_model: str, checkpoint: str, run_id: str, tags: dict[str, str]) -> str:
    """Log the pyfunc (checkpoint folder as artifact) in ``run_id``, register a new version with tags; return it."""
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="generator",
            python_model=GeneratorModel(),
            artifacts={"checkpoint": checkpoint},
            tags=tags,
            pip_requirements=model_requirements(),
        )
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


def find_published(registered_model: str, publish_key: str) -> str | None:
    """The version an earlier attempt of this publish registered (same ``publish_key`` tag), if any."""
    client = MlflowClient()
    try:
        found = client.search_model_versions(
            f"name = '{registered_model}' and tags.{PUBLISH_KEY_TAG} = '{publish_key}'"
        )
    except MlflowException:
        return None
    return str(min(int(v.version) for v in found)) if found else None


def publish_version(registered_model: str, checkpoint: str, run_id: str, tags: dict[str, str], publish_key: str) -> str:
    """Register the checkpoint once per ``publish_key`` (flow run + checkpoint): a retried task reuses the version."""
    existing = find_published(registered_model, publish_key)
    if existing is not None:
        return existing
    return log_model_version(registered_model, checkpoint, run_id, {**tags, PUBLISH_KEY_TAG: publish_key})


def recorded_verdict(name: str, version: str) -> GateVerdict | None:
    """The gate verdict stored on a version by an earlier attempt (None when the gate has not finished for it)."""
    raw = MlflowClient().get_model_version(name, version).tags.get(VERDICT_TAG)
    return GateVerdict.model_validate_json(raw) if raw else None


def _cached_rescore(client: MlflowClient, name: str, champion: str, candidate: FidScore) -> FidScore | None:
    """The champion's re-score on the candidate's terms, cached on the champion version by an earlier gate."""
    raw = client.get_model_version(name, champion).tags.get(RESCORE_TAG_PREFIX + rescore_key(candidate))
    return FidScore.model_validate_json(raw) if raw else None


def gate_and_alias(
    name: str,
    version: str,
    score: FidScore,
    *,
    metric: GateMetric,
    margin: float,
    tag: str,
    lock: Callable[[], contextlib.AbstractContextManager[Any]],
    rescore: Rescorer | None = None,
    on_unusable: Literal["promote", "keep"] = "keep",
) -> GateOutcome:
    """Set the publish tag alias; promote to champion through the like-for-like gate (under ``lock``).

    Idempotent: a version whose verdict is recorded returns it; a version that already is the champion (an attempt
    failed after promoting it) reports promoted. The champion's re-score (slow: it samples the champion) is
    computed before taking the lock and reused under it unless the champion changed meanwhile; it is cached on
    the champion version per reference key, so the next candidate on the same terms skips it.
    """
    client = MlflowClient()
    if (done := recorded_verdict(name, version)) is not None:
        return _outcome(name, version, done, _alias_version(client, name, PREVIOUS))
    rescores: dict[str, FidScore | Exception] = {}

    def remembered(champion: str) -> FidScore:
        """Re-score each champion version at most once per publish; failures are remembered too."""
        if champion not in rescores:
            try:
                rescores[champion] = rescore(champion)  # type: ignore[misc]
            except Exception as exc:  # noqa: BLE001 - judged below as "champion unusable"
                rescores[champion] = exc
        result = rescores[champion]
        if isinstance(result, Exception):
            raise result
        return result

    def inputs(champion: str | None) -> tuple[FidScore | None, FidScore | None]:
        if champion is None or champion == version:
            return None, None
        return _score_of(client, name, champion), _cached_rescore(client, name, champion, score)

    current = _alias_version(client, name, CHAMPION)
    registered, cached = inputs(current)
    if (
        rescore is not None
        and current not in (None, version)
        and cached is None
        and (registered is None or not score.comparable_with(registered))
    ):
        # outside the lock: sampling the champion may take minutes on a big model; a failure is judged under it
        with contextlib.suppress(Exception):
            remembered(current)
    with lock():
        client.set_registered_model_alias(name, tag, version)
        current = _alias_version(client, name, CHAMPION)
        if current == version:
            verdict = GateVerdict(
                promoted=True,
                reason="already champion (promoted by an earlier attempt of this publish)",
                metric=metric,
                basis="already-champion",
                candidate=score,
                champion_version=current,
            )
        else:
            registered, cached = inputs(current)
            verdict = judge(
                score,
                current,
                registered,
                metric=metric,
                margin=margin,
                rescore=remembered if rescore is not None else None,
                cached=cached,
                on_unusable=on_unusable,
            )
            if verdict.basis == "rescored" and verdict.champion is not None and current is not None:
                client.set_model_version_tag(
                    name, current, RESCORE_TAG_PREFIX + rescore_key(score), verdict.champion.model_dump_json()
                )
            if verdict.promoted:
                if current:
                    client.set_registered_model_alias(name, PREVIOUS, current)
                client.set_registered_model_alias(name, CHAMPION, version)
        previous = _alias_version(client, name, PREVIOUS)
        for key, value in verdict_tags(verdict).items():
            client.set_model_version_tag(name, version, key, value)
    return _outcome(name, version, verdict, previous)


def _outcome(name: str, version: str, verdict: GateVerdict, previous: str | None) -> GateOutcome:
    """The gate's outcome: version, promoted, reason, the verdict with both scores, aliases."""
    return GateOutcome(
        version=version,
        promoted=verdict.promoted,
        reason=verdict.reason,
        previous_champion=verdict.champion_version if verdict.champion_version != version else previous,
        verdict=verdict,
        summary=verdict.summary(),
        aliases=aliases_of(name, version),
    )


def verdict_tags(verdict: GateVerdict) -> dict[str, str]:
    """Tags recording the gate's verdict, both scores and their comparability keys on the candidate version."""
    champion_value = verdict.champion.metric(verdict.metric) if verdict.champion else None
    candidate_value = verdict.candidate.metric(verdict.metric)
    return {
        VERDICT_TAG: verdict.model_dump_json(),
        "gate_verdict": "promoted" if verdict.promoted else "kept champion",
        "gate_basis": verdict.basis,
        "gate_reason": verdict.reason[:4000],
        "gate_champion_version": verdict.champion_version or "",
        f"gate_champion_{verdict.metric}": "" if champion_value is None else f"{champion_value:.6f}",
        f"gate_candidate_{verdict.metric}": "" if candidate_value is None else f"{candidate_value:.6f}",
    }


def aliases_of(name: str, version: str) -> list[str]:
    """Aliases pointing at a version (read via get_model_version: search results carry none)."""
    return sorted(MlflowClient().get_model_version(name, version).aliases)


def rollback(name: str, lock: Callable[[], contextlib.AbstractContextManager[Any]]) -> dict[str, Any]:
    """Move ``@champion`` back to ``@previous``; refuse clearly when there is none or the model does not exist."""
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise  # unreachable server, refused login, ...: not a missing model
        names = sorted(m.name for m in client.search_registered_models())
        raise RegistryError(f"no registered model {name!r}; allowed values: {', '.join(names) or '(none)'}") from None
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


def list_versions(name: str) -> list[RegisteredVersion]:
    """Every version with aliases, scores and lineage tags, newest first."""
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        raise RegistryError(f"model {name!r}: {exc}") from None
    if not versions:
        names = sorted(m.name for m in client.search_registered_models())
        raise RegistryError(f"no registered model {name!r}; allowed values: {', '.join(names) or '(none)'}")
    rows: list[RegisteredVersion] = []
    for v in sorted(versions, key=lambda v: int(v.version), reverse=True):
        full = client.get_model_version(name, v.version)
        score, verdict = full.tags.get(SCORE_TAG), full.tags.get(VERDICT_TAG)
        rows.append(
            RegisteredVersion(
                version=str(v.version),
                aliases=sorted(full.aliases),
                score=FidScore.model_validate_json(score) if score else None,
                gate=GateVerdict.model_validate_json(verdict) if verdict else None,
                tags={
                    k: val
                    for k, val in full.tags.items()
                    if k not in (SCORE_TAG, VERDICT_TAG) and not k.startswith(RESCORE_TAG_PREFIX)
                },
                run_id=full.run_id,
            )
        )
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
    return {
        SCORE_TAG: score.model_dump_json(),
        "fid": f"{score.fid:.6f}",
        "kid_mean": "" if score.kid_mean is None else f"{score.kid_mean:.6f}",
        "fid_n": str(score.n),
        "fid_dims": str(score.dims),
        "fid_weights_sha256": score.weights_sha256,
        "fid_resize": score.resize,
        **classifier_tags(score),
    }


def classifier_tags(score: FidScore) -> dict[str, str]:
    """Tags of the classifier score (none when the evaluator did not compute it)."""
    if score.classifier is None:
        return {}
    c = score.classifier
    return {
        "classifier_score": f"{c.mean_top_probability:.6f}",
        "classifier_coverage": f"{c.coverage}/{c.num_classes}",
        "classifier_accuracy": f"{c.classifier_accuracy:.6f}",
    }


def write_grid_png(images_nhwc: Any, out: Path, scale: int = 1) -> Path:
    """Save generated NHWC uint8 images as a PNG grid (each pixel ``scale x scale``)."""
    import torch

    from canvascraft.sampling import save_grid

    return save_grid(torch.as_tensor(images_nhwc).permute(0, 3, 1, 2), out, scale=scale)
