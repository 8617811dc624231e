"""DDPM trainer: diffusers ``UNet2DModel`` + ``DDPMScheduler`` (Ho et al. 2020), AdamW, cosine LR, EMA sampling."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

# Submodule imports, not ``from diffusers import ...``: under TYPE_CHECKING diffusers' __init__ also star-imports its
# dummy objects (placeholders for missing torch), which shadow the real classes for mypy.
from diffusers.models.unets.unet_2d import UNet2DModel
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.pipelines.ddpm.pipeline_ddpm import DDPMPipeline
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from diffusers.training_utils import EMAModel
from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
from pydantic import Field, model_validator
from safetensors.torch import load_file

from canvascraft.device import autocast, autocast_dtype, multi_tensor_kwargs
from canvascraft.errors import ParameterError
from canvascraft.trainers.base import TRAINERS, TrainConfig, Trainer, to_uint8


class DDPMConfig(TrainConfig):
    """UNet shape, noise schedule, prediction target, optimizer, EMA and sampler of the DDPM trainer."""

    block_out_channels: tuple[int, ...] = Field(
        default=(32, 64, 64), min_length=1, max_length=6, description="UNet width per resolution level."
    )
    layers_per_block: int = Field(default=2, ge=1, le=4, description="ResNet blocks per UNet level.")
    attention_levels: tuple[int, ...] = Field(
        default=(), max_length=6, description="UNet levels (0 = full resolution) with self-attention blocks."
    )
    mid_attention: bool = Field(default=True, description="Self-attention in the UNet's middle block.")
    attention_head_dim: int = Field(default=8, ge=1, le=512)
    norm_num_groups: int = Field(default=8, ge=1, le=256, description="GroupNorm groups; divides every width.")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    num_train_timesteps: int = Field(default=1000, ge=10, le=4000, description="T of the forward process.")
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear"
    beta_start: float = Field(default=1e-4, gt=0.0, lt=1.0)
    beta_end: float = Field(default=0.02, gt=0.0, lt=1.0)
    prediction_type: Literal["epsilon", "v_prediction", "sample"] = "epsilon"
    # AdamW defaults follow diffusers' examples/unconditional_image_generation/train_unconditional.py.
    learning_rate: float = Field(default=2e-4, gt=0.0, le=1.0)
    weight_decay: float = Field(default=1e-6, ge=0.0, le=1.0)
    adam_beta1: float = Field(default=0.95, ge=0.0, lt=1.0)
    adam_beta2: float = Field(default=0.999, ge=0.0, lt=1.0)
    adam_epsilon: float = Field(default=1e-8, gt=0.0, le=1.0)
    warmup_steps: int = Field(default=100, ge=0, le=1_000_000, description="Linear LR warmup before the cosine decay.")
    max_grad_norm: float = Field(default=1.0, ge=0.0, description="Gradient clipping norm (0 disables).")
    grad_accum_steps: int = Field(default=1, ge=1, le=1024, description="Micro-batches per optimizer step.")
    ema_decay: float = Field(default=0.9999, ge=0.0, le=1.0, description="Upper bound of the EMA decay.")
    ema_power: float = Field(default=0.75, gt=0.0, le=1.0, description="EMA warmup power: 1 - (1 + step)^-power.")
    sampler: Literal["ddpm", "ddim"] = Field(default="ddim", description="Scheduler used by sample().")
    inference_steps: int = Field(default=50, ge=1, le=4000, description="Denoising steps used by sample().")
    sample_batch_size: int = Field(default=256, ge=1, le=8192, description="Images denoised together in sample().")

    @model_validator(mode="after")
    def _check(self) -> DDPMConfig:
        levels = len(self.block_out_channels)
        if any(w < 1 or w % self.norm_num_groups for w in self.block_out_channels):
            raise ValueError(
                f"every block_out_channels width must be a positive multiple of "
                f"norm_num_groups={self.norm_num_groups}; got {list(self.block_out_channels)}"
            )
        if self.sample_size % 2 ** (levels - 1):
            raise ValueError(
                f"sample_size={self.sample_size} must be divisible by "
                f"2**(len(block_out_channels)-1)={2 ** (levels - 1)}"
            )
        bad_levels = [lvl for lvl in self.attention_levels if not 0 <= lvl < levels]
        if bad_levels:
            raise ValueError(f"attention_levels {bad_levels} out of range; allowed values: 0..{levels - 1}")
        attended = [self.block_out_channels[lvl] for lvl in self.attention_levels]
        attended += [self.block_out_channels[-1]] if self.mid_attention else []
        if any(w % self.attention_head_dim for w in attended):
            raise ValueError(
                f"widths with attention {attended} must be multiples of attention_head_dim={self.attention_head_dim}"
            )
        if self.beta_end <= self.beta_start:
            raise ValueError(f"beta_end={self.beta_end} must be greater than beta_start={self.beta_start}")
        if self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be < steps={self.steps}")
        if self.inference_steps > self.num_train_timesteps:
            raise ValueError(
                f"inference_steps={self.inference_steps} must be <= num_train_timesteps={self.num_train_timesteps}"
            )
        return self


@TRAINERS.register("ddpm")
class DDPMTrainer(Trainer[DDPMConfig]):
    """Denoising diffusion (Ho et al. 2020, Algorithm 1) on a diffusers UNet; samples with the EMA weights."""

    name = "ddpm"
    config_cls = DDPMConfig

    def _build(self, config: DDPMConfig) -> None:
        levels = range(len(config.block_out_channels))
        attn = set(config.attention_levels)
        self.unet = UNet2DModel(
            sample_size=config.sample_size,
            in_channels=config.channels,
            out_channels=config.channels,
            block_out_channels=config.block_out_channels,
            layers_per_block=config.layers_per_block,
            down_block_types=tuple("AttnDownBlock2D" if i in attn else "DownBlock2D" for i in levels),
            up_block_types=tuple("AttnUpBlock2D" if i in attn else "UpBlock2D" for i in reversed(levels)),
            add_attention=config.mid_attention,
            attention_head_dim=config.attention_head_dim,
            norm_num_groups=config.norm_num_groups,
            dropout=config.dropout,
        )
        self.unet.to(self.device).to(memory_format=self.memory_format)
        self.noise_scheduler = DDPMScheduler(
            num_train_timesteps=config.num_train_timesteps,
            beta_start=config.beta_start,
            beta_end=config.beta_end,
            beta_schedule=config.beta_schedule,
            prediction_type=config.prediction_type,
        )
        # Multi-tensor updates everywhere: torch picks the per-tensor loop on CPU by default, which costs one kernel
        # launch per parameter per op; fused AdamW on CUDA is one kernel (same math: torch.optim.AdamW docs).
        self.optimizer = torch.optim.AdamW(
            self.unet.parameters(),
            lr=config.learning_rate,
            betas=(config.adam_beta1, config.adam_beta2),
            weight_decay=config.weight_decay,
            eps=config.adam_epsilon,
            **multi_tensor_kwargs(self.device),
        )
        self.lr_scheduler = get_cosine_schedule_with_warmup(self.optimizer, config.warmup_steps, config.steps)
        # EMA warmup (crowsonkb, as in diffusers' train_unconditional.py): decay = 1 - (1 + step)^-power, capped.
        self.ema = EMAModel(
            self.unet.parameters(),
            decay=config.ema_decay,
            use_ema_warmup=True,
            inv_gamma=1.0,
            power=config.ema_power,
            foreach=True,
        )
        self.amp_dtype = autocast_dtype(self.device) if config.mixed_precision else None
        # fp16 needs loss scaling; bf16 has fp32's exponent range and does not.
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None

    def micro_batches_per_step(self) -> int:
        """``grad_accum_steps`` micro-batches per optimizer step."""
        return self._require_config().grad_accum_steps

    def _target(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Regression target for the configured parameterisation."""
        if self._require_config().prediction_type == "epsilon":
            return noise  # Ho et al. 2020, Eq. 14 (L_simple): predict the added noise
        if self._require_config().prediction_type == "v_prediction":
            # Salimans & Ho 2022 (progressive distillation), Sec. 4: v = sqrt(abar) * eps - sqrt(1 - abar) * x0
            return self.noise_scheduler.get_velocity(x0, noise, timesteps)
        return x0  # predict the clean sample directly

    def _train_step(self, batches: list[torch.Tensor]) -> dict[str, float]:
        """Ho et al. 2020, Algorithm 1 over ``grad_accum_steps`` micro-batches, then one clipped AdamW step."""
        config = self._require_config()
        self.unet.train()
        total = torch.zeros((), device=self.device)
        for x0 in batches:
            # Noise and timesteps come from the trainer's CPU generator: same stream on every device, checkpointed.
            noise = torch.randn(x0.shape, generator=self.rng)
            noise = noise.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            timesteps = torch.randint(0, config.num_train_timesteps, (x0.shape[0],), generator=self.rng)
            timesteps = timesteps.to(self.device, non_blocking=True)
            # Forward process q(x_t | x_0), Ho et al. 2020 Eq. 4: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps
            noisy = self.noise_scheduler.add_noise(x0, noise, timesteps)
            with autocast(self.device, self.amp_dtype):
                prediction = self.unet(noisy, timesteps).sample
            loss = F.mse_loss(prediction.float(), self._target(x0, noise, timesteps).float())
            scaled = loss / len(batches)
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            total += loss.detach()
        metrics: dict[str, float] = {}
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if config.max_grad_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.unet.parameters(), config.max_grad_norm, foreach=True)
            metrics["grad_norm"] = float(norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.step(self.unet.parameters())
        metrics["loss"] = float(total / len(batches))
        return metrics

    def _extra_metrics(self) -> dict[str, float]:
        return {"lr": float(self.lr_scheduler.get_last_lr()[0]), "ema_decay": float(self.ema.cur_decay_value or 0.0)}

    def _config_updated(self, previous: DDPMConfig, config: DDPMConfig) -> None:
        """A new ``steps`` budget rebuilds the cosine schedule at the current position."""
        if config.steps == previous.steps:
            return
        state = self.lr_scheduler.state_dict()
        self.lr_scheduler = get_cosine_schedule_with_warmup(self.optimizer, config.warmup_steps, config.steps)
        self.lr_scheduler.load_state_dict(state)
        for group, base_lr, lr_lambda in zip(
            self.optimizer.param_groups, self.lr_scheduler.base_lrs, self.lr_scheduler.lr_lambdas, strict=True
        ):
            group["lr"] = base_lr * lr_lambda(self.lr_scheduler.last_epoch)
        self.lr_scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    # --- sampling -----------------------------------------------------------------------------------------

    def ema_unet(self) -> UNet2DModel:
        """A UNet carrying the EMA weights, in eval mode on the training device (the model to publish)."""
        with torch.random.fork_rng(devices=[]):  # from_config initialises weights we overwrite at once
            unet = UNet2DModel.from_config(self.unet.config)
        self.ema.copy_to(unet.parameters())
        return unet.to(self.device).to(memory_format=self.memory_format).eval()

    def sampling_scheduler(self) -> DDPMScheduler | DDIMScheduler:
        """The configured sampler built from the training noise schedule."""
        cls = DDIMScheduler if self._require_config().sampler == "ddim" else DDPMScheduler
        return cls.from_config(self.noise_scheduler.config)

    @torch.no_grad()
    def sample(self, n: int, seed: int, *, inference_steps: int | None = None) -> torch.Tensor:
        """``n`` uint8 images from the EMA UNet; the loop is ``DDPMPipeline.__call__`` with a uint8 output."""
        config = self._require_config()
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        steps = config.inference_steps if inference_steps is None else inference_steps
        if not 1 <= steps <= config.num_train_timesteps:
            raise ParameterError(
                f"trainer 'ddpm': inference_steps must be in 1..num_train_timesteps={config.num_train_timesteps}, "
                f"got {steps}"
            )
        unet = self.ema_unet()
        scheduler = self.sampling_scheduler()
        scheduler.set_timesteps(steps)
        generator = torch.Generator().manual_seed(seed)
        shape = (config.channels, config.sample_size, config.sample_size)
        images = []
        for start in range(0, n, config.sample_batch_size):
            count = min(config.sample_batch_size, n - start)
            x = torch.randn((count, *shape), generator=generator)  # x_T ~ N(0, I), Ho et al. 2020 Algorithm 2
            x = x.to(self.device).contiguous(memory_format=self.memory_format)
            for t in scheduler.timesteps:
                with autocast(self.device, self.amp_dtype):
                    model_output = unet(x, t).sample
                x = scheduler.step(model_output.float(), t, x, generator=generator, return_dict=False)[0]  # prev_sample
            images.append(to_uint8(x))
        return torch.cat(images)

    def pipeline(self) -> DDPMPipeline:
        """A ``DDPMPipeline`` with the EMA UNet and the configured sampler (``save_pretrained`` it to publish)."""
        # DDPMPipeline annotates DDPMScheduler through diffusers' package __init__ (mypy sees its dummy placeholder);
        # any SchedulerMixin works at runtime, as its docstring says.
        return DDPMPipeline(unet=self.ema_unet(), scheduler=self.sampling_scheduler())  # type: ignore[arg-type]

    # --- checkpoints: unet/ unet_ema/ scheduler/ (save_pretrained, safetensors) + training_state -----------

    def _save_weights(self, directory: Path) -> None:
        self.unet.save_pretrained(directory / "unet", safe_serialization=True)
        # The EMA weights as a plain UNet2DModel folder (loadable with from_pretrained, e.g. for publishing);
        # the EMA counters go to training_state with the optimizer.
        self.ema_unet().save_pretrained(directory / "unet_ema", safe_serialization=True)
        self.noise_scheduler.save_pretrained(directory / "scheduler")

    def _load_weights(self, directory: Path) -> None:
        self.unet.load_state_dict(load_file(str(directory / "unet" / SAFETENSORS_WEIGHTS_NAME), device="cpu"))
        ema_weights = load_file(str(directory / "unet_ema" / SAFETENSORS_WEIGHTS_NAME), device="cpu")
        self.ema.shadow_params = [ema_weights[name].to(self.device) for name, _ in self.unet.named_parameters()]
        self.noise_scheduler = DDPMScheduler.from_pretrained(directory / "scheduler")

    def _training_state(self) -> dict[str, Any]:
        ema_state = {k: v for k, v in self.ema.state_dict().items() if k != "shadow_params"}
        state: dict[str, Any] = {
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "ema": ema_state,
        }
        if self.scaler is not None:
            state["grad_scaler"] = self.scaler.state_dict()
        return state

    def _load_training_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self.ema.load_state_dict(state["ema"])  # counters only; the shadow weights came from unet_ema/
        if self.scaler is not None and "grad_scaler" in state:
            self.scaler.load_state_dict(state["grad_scaler"])
