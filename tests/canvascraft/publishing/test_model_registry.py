"""Registry publish on a real MLflow (sqlite): gate, aliases, rollback, promote, concurrent publishes, generate."""

from __future__ import annotations

import threading
from pathlib import Path

import mlflow
import pytest
import torch

from canvascraft.evaluation.scores import FidScore
from canvascraft.publishing import model_registry as registry
from canvascraft.trainers import build_trainer

SHA = "a" * 64


def score(fid: float, n: int = 100, dims: int = 64) -> FidScore:
    return FidScore(fid=fid, kid_mean=fid / 100, kid_std=0.01, n=n, n_real=n, dims=dims, weights_sha256=SHA,
                    resize="bilinear", reference="dv1")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    trainer = build_trainer("dcgan", {"sample_size": 8, "channels": 1, "latent_dim": 4, "g_features": 4,
                                      "d_features": 4, "steps": 1, "batch_size": 4})
    trainer.train(None, torch.rand(8, 1, 8, 8) * 2 - 1)
    return str(trainer.save_checkpoint(tmp_path_factory.mktemp("ckpt") / "final"))


@pytest.fixture
def model(tmp_path: Path, checkpoint: str):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("registry-test")
    name = f"m-{tmp_path.name[-12:]}"

    def publish(fid: float, **kwargs: object) -> dict:
        with mlflow.start_run() as run:
            pass
        s = score(fid, **kwargs)
        version = registry.log_model_version(name, checkpoint, run.info.run_id, registry.save_score_tags(s))
        return registry.gate_and_alias(name, version, s, metric="fid", margin=0.5, tag="candidate",
                                       lock=registry.lock_for(tmp_path, name))

    yield name, publish, registry.lock_for(tmp_path, name)


def test_decide_rules() -> None:
    assert registry.decide(score(10), None, "fid", 0.0)[0]
    assert registry.decide(score(9), score(10), "fid", 0.5)[0]
    assert not registry.decide(score(9.8), score(10), "fid", 0.5)[0]  # within the margin
    ok, reason = registry.decide(score(1, n=50), score(10), "fid", 0.0)
    assert not ok and "not comparable" in reason and "n" in reason


def test_gate_promotes_better_rejects_worse_and_rollback_restores(model) -> None:
    name, publish, lock = model
    first = publish(10.0)
    assert first["promoted"] and first["aliases"] == ["candidate", "champion"]
    worse = publish(12.0)
    assert not worse["promoted"] and worse["aliases"] == ["candidate"]
    better = publish(5.0)
    assert better["promoted"] and better["previous_champion"] == first["version"]
    assert registry.aliases_of(name, first["version"]) == ["previous"]
    listed = {row["version"]: row for row in registry.list_versions(name)}
    assert listed[better["version"]]["score"]["fid"] == 5.0 and listed[better["version"]]["tags"]["fid_dims"] == "64"

    back = registry.rollback(name, lock)
    assert back == {"champion": first["version"], "replaced": better["version"]}
    assert "champion" in registry.aliases_of(name, first["version"])
    with pytest.raises(registry.RegistryError, match="no @previous version"):
        registry.rollback(name, lock)
    assert registry.promote(name, better["version"], lock)["champion"] == better["version"]
    with pytest.raises(registry.RegistryError, match="has no version 99"):
        registry.promote(name, "99", lock)


def test_concurrent_publishes_leave_one_consistent_champion(model) -> None:
    name, publish, _ = model
    base = publish(20.0)
    results: dict[str, dict] = {}
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
    assert str(champion) == results["best"]["version"]  # the best score wins whatever the interleaving
    assert str(previous) in {base["version"], results["good"]["version"]} and previous != champion


def test_generate_cli_writes_png_of_requested_size(model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image
    from typer.testing import CliRunner

    from canvascraft.cli import app

    name, publish, _ = model
    publish(3.0)
    monkeypatch.setenv("CANVASCRAFT_MLFLOW_TRACKING_URI", mlflow.get_tracking_uri())
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(app, ["models", "generate", f"{name}@champion", "-n", "9", "--seed", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    # 3x3 grid of 8x8 images with 1-pixel padding: 3*8 + 4 = 28
    assert Image.open(out).size == (28, 28)
    images = registry.generate(f"{name}@champion", 4, 2)
    assert images.shape == (4, 8, 8, 1) and images.dtype.name == "uint8"
    assert (registry.generate(f"{name}@champion", 4, 2) == images).all()  # seeded
