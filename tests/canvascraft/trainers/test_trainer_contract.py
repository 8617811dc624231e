"""The trainer contract shared by every strategy: registry, reporter calls, checkpoint folders and state files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from canvascraft.device import DeviceUnavailableError
from canvascraft.errors import ParameterError, UnknownComponentError
from canvascraft.trainers import TRAINERS, CheckpointError, DCGANTrainer, DDPMTrainer, Reporter, build_trainer
from canvascraft.trainers.checkpoint import load_state, save_state
from canvascraft.trainers.sampler import MinibatchSampler, derive_seed

GAN = {"sample_size": 16, "channels": 1, "g_features": 8, "d_features": 8, "batch_size": 16, "steps": 5}


def test_registry_holds_both_trainers_and_names_allowed_values() -> None:
    assert {"ddpm", "dcgan"} <= set(TRAINERS.names())
    assert TRAINERS.get("ddpm") is DDPMTrainer and TRAINERS.get("dcgan") is DCGANTrainer
    with pytest.raises(UnknownComponentError, match=r"unknown trainer 'vae'; allowed values: .*dcgan, ddpm"):
        build_trainer("vae")


def test_build_trainer_validates_params_and_device() -> None:
    trainer = build_trainer("dcgan", GAN, device="cpu")
    assert trainer.config.g_features == 8 and trainer.device == torch.device("cpu")
    with pytest.raises(ParameterError, match=r"trainer 'dcgan' has invalid params: latent_dim: .* \(got 0\)"):
        build_trainer("dcgan", {**GAN, "latent_dim": 0}, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="device: 'cuda' was requested"):
            build_trainer("dcgan", GAN, device="cuda")


def test_reporter_gets_metrics_every_log_every_and_temporary_checkpoints(digits16: torch.Tensor) -> None:
    calls: list[tuple[dict[str, float], Path | None, bool]] = []

    def reporter(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        complete = checkpoint_dir is not None and (checkpoint_dir / "canvascraft_trainer.json").is_file()
        if checkpoint_dir is not None:
            assert json.loads((checkpoint_dir / "canvascraft_trainer.json").read_text())["step"] == metrics["step"]
        calls.append((metrics, checkpoint_dir, complete))

    assert isinstance(reporter, Reporter)
    result = DCGANTrainer({**GAN, "log_every": 2, "checkpoint_every": 4}, device="cpu").train(None, digits16, reporter)
    assert [m["step"] for m, _, _ in calls] == [2, 4, 5]  # every 2, plus the final step
    assert [d is not None for _, d, _ in calls] == [False, True, True]  # checkpoint every 4 and at the end
    assert all(complete for _, d, complete in calls if d is not None)
    assert all(not d.exists() for _, d, _ in calls if d is not None)  # temporary: gone once reported
    for metrics, _, _ in calls:
        assert {"loss", "loss_g", "loss_d", "step", "images_per_sec", "step_time", "lr_g"} <= set(metrics)
        assert all(isinstance(v, float | int) and not isinstance(v, bool) for v in metrics.values())
    assert calls[0][0]["loss"] == pytest.approx(sum(result.losses[:2]) / 2)
    assert result.metrics == calls[-1][0] and result.checkpoint_dir is None


def test_finished_run_trains_no_further(digits16: torch.Tensor) -> None:
    trainer = DCGANTrainer(GAN, device="cpu")
    trainer.train(None, digits16)
    again = trainer.train(None, digits16)
    assert (again.steps, again.steps_run, again.losses) == (5, 0, [])


def test_checkpoint_errors_name_the_problem(tmp_path: Path, digits16: torch.Tensor) -> None:
    with pytest.raises(CheckpointError, match=r"has no canvascraft_trainer\.json"):
        DDPMTrainer(device="cpu").load_checkpoint(tmp_path)
    trainer = DCGANTrainer(GAN, device="cpu")
    trainer.save_checkpoint(tmp_path / "gan")
    with pytest.raises(CheckpointError, match="written by trainer 'dcgan', not 'ddpm'"):
        DDPMTrainer(device="cpu").load_checkpoint(tmp_path / "gan")
    with pytest.raises(ParameterError, match="no config"):
        DDPMTrainer(device="cpu").train(None, digits16)


def test_state_files_roundtrip_without_pickle(tmp_path: Path) -> None:
    state = {
        "step": 3,
        "lr": 1e-4,
        "betas": (0.9, 0.999),
        "flag": True,
        "name": "x",
        "none": None,
        "state": {0: {"exp_avg": torch.randn(2, 3), "step": torch.tensor(4.0)}},
        "rng": torch.Generator().manual_seed(1).get_state(),
    }
    save_state(tmp_path, "s", state)
    loaded = load_state(tmp_path, "s")
    assert loaded["betas"] == (0.9, 0.999) and list(loaded["state"]) == [0]
    assert torch.equal(loaded["state"][0]["exp_avg"], state["state"][0]["exp_avg"])
    assert torch.equal(loaded["rng"], state["rng"]) and loaded["none"] is None and loaded["lr"] == 1e-4


def test_minibatches_are_seeded_stateless_and_cover_each_epoch() -> None:
    sampler = MinibatchSampler(size=10, batch_size=3, seed=0)
    epoch0 = torch.cat([sampler.indices(k) for k in range(3)])
    assert len(set(epoch0.tolist())) == 9  # drop-last, no repeats within an epoch
    assert torch.equal(MinibatchSampler(10, 3, 0).indices(4), sampler.indices(4))  # any step, any order
    assert not torch.equal(MinibatchSampler(10, 3, 1).indices(0), MinibatchSampler(10, 3, 0).indices(0))
    assert derive_seed(0, "a") != derive_seed(0, "b") and derive_seed(0, "a") == derive_seed(0, "a")


def test_training_leaves_the_global_rng_alone(digits16: torch.Tensor) -> None:
    torch.manual_seed(42)
    expected = torch.rand(3)
    torch.manual_seed(42)
    DCGANTrainer(GAN, device="cpu").train(None, digits16)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_paths_run(digits16: torch.Tensor, dtype: torch.dtype) -> None:
    # CUDA is absent here: drive the autocast (+ GradScaler for fp16) code paths with CPU autocast instead.
    ddpm = DDPMTrainer(
        {
            "sample_size": 16,
            "channels": 1,
            "block_out_channels": (16, 32),
            "layers_per_block": 1,
            "batch_size": 8,
            "steps": 2,
            "warmup_steps": 1,
            "inference_steps": 2,
        },
        device="cpu",
    )
    gan = DCGANTrainer(GAN, device="cpu")
    ddpm.amp_dtype = gan.amp_dtype = dtype
    if dtype == torch.float16:
        ddpm.scaler, gan.scaler_g, gan.scaler_d = (torch.amp.GradScaler("cpu") for _ in range(3))
    for trainer in (ddpm, gan):
        result = trainer.train(None, digits16)
        assert all(math.isfinite(loss) for loss in result.losses)
        assert trainer.sample(2, seed=0).dtype == torch.uint8
    if dtype == torch.float16:
        assert "grad_scaler" in ddpm._training_state() and "grad_scaler_g" in gan._training_state()
