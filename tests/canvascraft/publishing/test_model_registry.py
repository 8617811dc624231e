"""Registry publish on a real MLflow (sqlite): gate, aliases, rollback, promote, concurrent publishes, generate."""

from __future__ import annotations

import threading
from pathlib import Path

import mlflow
import pytest
import torch

from canvascraft.evaluation.scores import FidScore
from canvascraft.outcomes import GateOutcome
from canvascraft.publishing import model_registry as registry
from canvascraft.trainers import build_trainer

SHA = "a" * 64


def score(fid: float, n: int = 100, dims: int = 64, reference: str = "dv1") -> FidScore:
    return FidScore(
        fid=fid,
        kid_mean=fid / 100,
        kid_std=0.01,
        n=n,
        n_real=n,
        dims=dims,
        weights_sha256=SHA,
        resize="bilinear",
        reference=reference,
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    trainer = build_trainer(
        "dcgan",
        {
            "sample_size": 8,
            "channels": 1,
            "latent_dim": 4,
            "g_features": 4,
            "d_features": 4,
            "steps": 1,
            "batch_size": 4,
        },
    )
    trainer.train(None, torch.rand(8, 1, 8, 8) * 2 - 1)
    return str(trainer.save_checkpoint(tmp_path_factory.mktemp("ckpt") / "final"))


@pytest.fixture
def model(tmp_path: Path, checkpoint: str):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("registry-test")
    name = f"m-{tmp_path.name[-12:]}"

    def publish(fid: float, rescore=None, on_unusable: str = "keep", **kwargs: object) -> GateOutcome:
        with mlflow.start_run() as run:
            pass
        s = score(fid, **kwargs)
        version = registry.log_model_version(name, checkpoint, run.info.run_id, registry.save_score_tags(s))
        return registry.gate_and_alias(
            name,
            version,
            s,
            metric="fid",
            margin=0.5,
            tag="candidate",
            lock=registry.lock_for(tmp_path, name),
            rescore=rescore,
            on_unusable=on_unusable,
        )

    yield name, publish, registry.lock_for(tmp_path, name)


def test_gate_promotes_better_rejects_worse_and_rollback_restores(model) -> None:
    name, publish, lock = model
    first = publish(10.0)
    assert first.promoted and first.aliases == ["candidate", "champion"]
    worse = publish(12.0)
    assert not worse.promoted and worse.aliases == ["candidate"]
    better = publish(5.0)
    assert better.promoted and better.previous_champion == first.version
    assert registry.aliases_of(name, first.version) == ["previous"]
    listed = {row.version: row for row in registry.list_versions(name)}
    assert listed[better.version].score.fid == 5.0 and listed[better.version].tags["fid_dims"] == "64"

    back = registry.rollback(name, lock)
    assert back == {"champion": first.version, "replaced": better.version}
    assert "champion" in registry.aliases_of(name, first.version)
    with pytest.raises(registry.RegistryError, match="no @previous version"):
        registry.rollback(name, lock)
    assert registry.promote(name, better.version, lock)["champion"] == better.version
    with pytest.raises(registry.RegistryError, match="has no version 99"):
        registry.promote(name, "99", lock)


def test_concurrent_publishes_leave_one_consistent_champion(model) -> None:
    name, publish, _ = model
    base = publish(20.0)
    results: dict[str, GateOutcome] = {}
    barrier = threading.Barrier(2)

    def run(label: str, fid: float) -> None:
        barrier.wait()
        results[label] = publish(fid)

    threads = [threading.Thread(target=run, args=("good", 8.0)), threading.Thread(target=run, args=("best", 4.0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    champion = mlflow.MlflowClient().get_model_version_by_alias(name, "champion").version
    previous = mlflow.MlflowClient().get_model_version_by_alias(name, "previous").version
    assert str(champion) == results["best"].version  # the best score wins whatever the interleaving
    # @previous is the champion "best" replaced: "good" if "good" was promoted first, else the base version. The
    # verdict recorded on "good" says which order the lock gave; the chain must agree with it. (The cross-process
    # race, which fails without the lock, is tests/flows/test_two_machines.py::test_concurrent_publishes_...)
    expected_previous = results["good"].version if results["good"].promoted else base.version
    assert str(previous) == expected_previous


def test_generate_cli_writes_png_of_requested_size(model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image
    from typer.testing import CliRunner

    from cli.main import app

    name, publish, _ = model
    publish(3.0)
    monkeypatch.setenv("CANVASCRAFT_MLFLOW_TRACKING_URI", mlflow.get_tracking_uri())
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(
        app, ["models", "generate", f"{name}@champion", "-n", "9", "--seed", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    # 3x3 grid of 8x8 images with 1-pixel padding: 3*8 + 4 = 28
    assert Image.open(out).size == (28, 28)
    scaled = CliRunner().invoke(
        app, ["models", "generate", f"{name}@champion", "-n", "9", "--seed", "2", "--out", str(out), "--scale", "3"]
    )
    assert scaled.exit_code == 0, scaled.output
    assert Image.open(out).size == (3 * 24 + 4, 3 * 24 + 4)  # each pixel 3x3, the 1-pixel padding unchanged
    images = registry.generate(f"{name}@champion", 4, 2)
    assert images.shape == (4, 8, 8, 1) and images.dtype.name == "uint8"
    assert (registry.generate(f"{name}@champion", 4, 2) == images).all()  # seeded


def test_gate_rescores_the_champion_on_the_candidates_terms_and_caches_it(model) -> None:
    name, publish, _ = model
    first = publish(10.0)
    asked: list[str] = []

    def rescore(champion: str) -> FidScore:
        asked.append(champion)  # the champion on dv2's terms is worse than as registered on dv1
        return score(14.0, reference="dv2")

    # same terms: the registered scores are compared, the champion is not re-scored
    same = publish(12.0, rescore=rescore)
    assert not same.promoted and same.verdict.basis == "as-registered" and asked == []
    # a retrain on new data (reference dv2): re-scored, compared like with like, promoted, verdict recorded
    retrain = publish(13.0, rescore=rescore, reference="dv2")
    assert asked == [first.version] and retrain.promoted, retrain.reason
    verdict = retrain.verdict
    assert verdict.basis == "rescored" and verdict.champion_version == first.version
    assert verdict.champion.fid == 14.0 and verdict.champion.reference == "dv2"
    assert verdict.champion_registered.reference == "dv1"
    assert "13.0000" in retrain.summary and "14.0000" in retrain.summary
    row = {r.version: r for r in registry.list_versions(name)}[retrain.version]
    assert row.gate.basis == "rescored" and row.tags["gate_verdict"] == "promoted"
    assert row.tags["gate_champion_fid"] == "14.000000"
    # cached per (champion version, reference key): a second candidate on dv2's terms against v1 reuses it
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", first.version)
    again = publish(12.0, rescore=rescore, reference="dv2")
    assert again.verdict.basis == "rescore-cached" and asked == [first.version] and again.promoted


@pytest.mark.parametrize(("policy", "promoted"), [("keep", False), ("promote", True)])
def test_unusable_champion_is_a_verdict_not_a_crash(model, policy: str, promoted: bool) -> None:
    name, publish, _ = model
    publish(10.0)

    def broken(champion: str) -> FidScore:
        raise OSError(f"models:/{name}/{champion}: checkpoint folder is empty")

    outcome = publish(11.0, rescore=broken, on_unusable=policy, reference="dv2")
    assert outcome.promoted is promoted and outcome.verdict.basis == "champion-unusable"
    assert (
        outcome.reason.startswith("champion unusable: OSError") and f"on_unusable_champion={policy}" in outcome.reason
    )


def test_retried_publish_reuses_its_version_and_reports_the_promotion(
    model, checkpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the promotion (here: recording the verdict) and a retry: one version, reported promoted."""
    name, publish, lock = model
    publish(10.0)
    with mlflow.start_run() as run:
        pass
    candidate = score(5.0)
    tags = registry.save_score_tags(candidate)
    first = registry.publish_version(name, checkpoint, run.info.run_id, tags, publish_key="run-1/ckpt")
    real_tags = registry.verdict_tags
    monkeypatch.setattr(
        registry, "verdict_tags", lambda verdict: (_ for _ in ()).throw(ConnectionError("MLflow went away"))
    )
    with pytest.raises(ConnectionError):
        registry.gate_and_alias(name, first, candidate, metric="fid", margin=0.5, tag="candidate", lock=lock)
    assert "champion" in registry.aliases_of(name, first)  # promoted before the failure
    monkeypatch.setattr(registry, "verdict_tags", real_tags)

    retried = registry.publish_version(name, checkpoint, run.info.run_id, tags, publish_key="run-1/ckpt")
    assert retried == first
    outcome = registry.gate_and_alias(name, retried, candidate, metric="fid", margin=0.5, tag="candidate", lock=lock)
    assert outcome.promoted and outcome.verdict.basis == "already-champion"
    versions = mlflow.MlflowClient().search_model_versions(f"name = '{name}'")
    assert len(versions) == 2  # v1 and the candidate: no second registration
    # a third attempt returns the recorded verdict unchanged
    assert (
        registry.gate_and_alias(name, retried, candidate, metric="fid", margin=0.5, tag="candidate", lock=lock).verdict
        == outcome.verdict
    )


def test_gate_on_classifier_score_promotes_the_better_candidate(tmp_path: Path, checkpoint: str) -> None:
    """``publish.gate.metric: classifier_score``: higher wins, whatever FID says; the tags carry the score."""
    from canvascraft.evaluation.classifier_score import ClassifierScore

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("registry-classifier-test")
    name = "m-classifier"

    def publish(fid: float, probability: float) -> dict:
        with mlflow.start_run() as run:
            pass
        part = ClassifierScore(
            mean_top_probability=probability,
            coverage=8,
            num_classes=10,
            confident=0.8,
            n=100,
            classifier_accuracy=0.93,
            classifier="clf",
        )
        s = score(fid).model_copy(update={"classifier": part})
        version = registry.log_model_version(name, checkpoint, run.info.run_id, registry.save_score_tags(s))
        return registry.gate_and_alias(
            name,
            version,
            s,
            metric="classifier_score",
            margin=0.0,
            tag="candidate",
            lock=registry.lock_for(tmp_path, name),
        )

    first = publish(fid=5.0, probability=0.70)
    worse = publish(fid=1.0, probability=0.60)  # better FID, worse classifier score: kept out
    better = publish(fid=9.0, probability=0.85)
    assert (first.promoted, worse.promoted, better.promoted) == (True, False, True)
    assert registry.aliases_of(name, better.version) == ["candidate", "champion"]
    assert registry.aliases_of(name, first.version) == ["previous"]
    tags = {row.version: row.tags for row in registry.list_versions(name)}[better.version]
    assert tags["classifier_score"] == "0.850000" and tags["classifier_coverage"] == "8/10"
    assert (
        tags["gate_candidate_classifier_score"] == "0.850000" and tags["gate_champion_classifier_score"] == "0.700000"
    )


def test_models_list_cli_shows_typed_rows(model, monkeypatch: pytest.MonkeyPatch) -> None:
    """``models list`` renders the typed rows: scores, the gate's verdict against the champion, JSON round-trips."""
    import json

    from typer.testing import CliRunner

    from cli.main import app

    name, publish, _ = model
    first = publish(10.0)
    worse = publish(12.0)
    monkeypatch.setenv("CANVASCRAFT_MLFLOW_TRACKING_URI", mlflow.get_tracking_uri())
    monkeypatch.setenv("COLUMNS", "250")
    table = CliRunner().invoke(app, ["models", "list", name])
    assert table.exit_code == 0, table.output
    assert "12.000" in table.output and "kept champion (as-registered)" in table.output
    assert f"vs v{first.version} fid 10.000" in table.output
    listed = CliRunner().invoke(app, ["models", "list", name, "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["version"]: row for row in json.loads(listed.output)}
    assert rows[worse.version]["score"]["fid"] == 12.0 and rows[worse.version]["gate"]["promoted"] is False
    assert rows[first.version]["gate"]["basis"] == "first-version"
