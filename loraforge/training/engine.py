"""The training loop: flow-matching LoRA training of Qwen-Image or FLUX.1-dev on a prepared dataset.

Read top to bottom: load the pipeline, cache latents and text embeddings once and free the
encoders, attach the LoRA, restore the latest checkpoint when resuming, then for each step draw a
bucket and a batch, a fresh latent sample, noise and a timestep (logit-normal, shifted or
uniform), predict the velocity `noise - latents`, and step AdamW. All randomness comes from two
seeded generators whose states the checkpoints keep, so a resumed run equals an uninterrupted
one. The loss is read back to the host only when progress is reported (every step on the CPU,
every few on a GPU), to keep the device queue full. `should_stop` is checked at each step
boundary and ends the run with JobCancelled.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from loraforge.errors import JobCancelled, TrainingError
from loraforge.training import flux, qwen
from loraforge.training.cache import Bucket, DatasetLike, build_cache, free_encoders
from loraforge.training.checkpoints import fingerprint, list_checkpoints, load_checkpoint, save_checkpoint
from loraforge.training.export import save_comfy_lora, save_diffusers_lora
from loraforge.training.loading import default_device, load_pipeline
from loraforge.training.precision import (
    compile_blocks,
    is_cuda,
    quantized_transformer,
    use_compile,
    use_gradient_checkpointing,
)
from loraforge.training.presets import TrainSpec

logger = logging.getLogger(__name__)

GPU_REPORT_EVERY = 10


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int
    loss: float | None
    eta_seconds: float | None


@dataclass(frozen=True)
class TrainResult:
    lora_path: Path
    comfy_path: Path
    steps: int
    final_loss: float | None
    metadata: dict[str, Any] = field(default_factory=dict)


def sample_sigmas(spec: TrainSpec, n: int, generator: torch.Generator, device: str | torch.device) -> torch.Tensor:
    """Noise levels in (0, 1) for a batch, drawn on the device (no host sync)."""
    if spec.timestep_sampling == "uniform":
        return torch.rand(n, generator=generator, device=device)
    normal = torch.randn(n, generator=generator, device=device)
    if spec.timestep_sampling == "logit_normal":
        return torch.sigmoid(spec.logit_mean + spec.logit_std * normal)
    s = torch.sigmoid(normal)  # "shifted": more weight on high noise, as at high resolution
    return spec.shift * s / (1 + (spec.shift - 1) * s)


def attach_lora(transformer: Any, spec: TrainSpec) -> tuple[Any, list[torch.nn.Parameter]]:
    from peft import LoraConfig

    transformer.requires_grad_(False)
    config = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, init_lora_weights="gaussian",
                        target_modules=list(spec.target_modules))
    with torch.random.fork_rng(devices=[]):  # the LoRA init is seeded without touching global RNG
        torch.manual_seed(spec.seed)
        try:
            transformer.add_adapter(config)
        except ValueError as exc:
            raise TrainingError(f"target_modules {list(spec.target_modules)} do not fit this model: {exc}") from exc
    params = [p for p in transformer.parameters() if p.requires_grad]
    for p in params:  # fp32 master weights for the LoRA even when the base is bf16
        p.data = p.data.float()
    return config, params


def train_step(predictor: Any, bucket: Bucket, index: torch.Tensor, spec: TrainSpec,
               noise_gen: torch.Generator, params: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
               autocast: Any) -> torch.Tensor:
    """One optimizer step on the items `index` of `bucket`; returns the loss (detached, on device)."""
    mean, std = bucket.mean[index], bucket.std[index]
    device = mean.device
    latents = mean + std * torch.randn(mean.shape, generator=noise_gen, device=device)
    noise = torch.randn(mean.shape, generator=noise_gen, device=device)
    sigma = sample_sigmas(spec, index.shape[0], noise_gen, device)
    s = sigma.view(-1, *([1] * (latents.ndim - 1)))
    noisy = (1 - s) * latents + s * noise
    text = {k: v[index] for k, v in bucket.text.items()}
    with autocast:
        pred = predictor(noisy, sigma, text)
    loss = F.mse_loss(pred.float(), (noise - latents).float())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, spec.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def make_optimizer(params: list[torch.nn.Parameter], spec: TrainSpec, device: str) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=spec.learning_rate, betas=(0.9, 0.999), eps=1e-8,
                             weight_decay=spec.weight_decay, fused=is_cuda(device) or None)


def train(spec: TrainSpec, dataset: DatasetLike, out_dir: Path, *, model_ref: str,
          progress: Callable[[Progress], None] | None = None,
          should_stop: Callable[[], bool] | None = None,
          on_checkpoint: Callable[[Path, int], None] | None = None,
          resume: bool = False, device: str | None = None, name: str = "lora") -> TrainResult:
    """Train a LoRA for `spec` on `dataset`; writes out_dir/{name}.safetensors and its ComfyUI copy."""
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

    device = device or default_device()
    ops = qwen if spec.family == "qwen" else flux
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_root = out_dir / "checkpoints"
    expected = fingerprint(spec, dataset.dataset_sha256)
    found = list_checkpoints(ckpt_root) if resume else []
    state = load_checkpoint(found[-1], expected) if found else None
    if resume and state is None:
        logger.info("no checkpoint in %s; training from step 0", ckpt_root)
    if not resume and ckpt_root.exists():
        # A fresh run must not keep (or later prefer) another run's checkpoints.
        logger.info("removing old checkpoints in %s (resume not asked)", ckpt_root)
        shutil.rmtree(ckpt_root)

    extra = {}
    transformer_q = quantized_transformer(spec.family, model_ref, spec.base_weights, device)
    if transformer_q is not None:
        extra["transformer"] = transformer_q
    pipe = load_pipeline(spec.family, model_ref, device=device, **extra)
    buckets = build_cache(pipe, ops, dataset, spec, device)
    transformer = free_encoders(pipe)
    del pipe

    lora_config, params = attach_lora(transformer, spec)
    width = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    if use_gradient_checkpointing(spec, device):
        transformer.enable_gradient_checkpointing()
    if use_compile(spec, device, width):
        logger.info("compiling %d transformer blocks", compile_blocks(ops.block_lists(transformer)))
    transformer.train()
    optimizer = make_optimizer(params, spec, device)
    data_gen = torch.Generator("cpu").manual_seed(spec.seed)  # bucket and batch choice
    noise_gen = torch.Generator(device).manual_seed(spec.seed + 1)  # latents, noise, timesteps
    start = 0
    if state is not None:
        set_peft_model_state_dict(transformer, {k: v.to(device) for k, v in state["lora"].items()})
        optimizer.load_state_dict(state["optimizer"])
        data_gen.set_state(state["rng"]["data"])
        noise_gen.set_state(state["rng"]["noise"])
        start = state["step"]
        logger.info("resumed from checkpoint step %d", start)

    predictor = ops.Predictor(transformer, spec)
    weights = torch.tensor([len(b) for b in buckets], dtype=torch.float)
    report_every = GPU_REPORT_EVERY if is_cuda(device) else 1
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=is_cuda(device))
    loss_sum = torch.zeros((), device=device)
    pending, last_loss = 0, None
    t_start = time.perf_counter()
    try:
        for step in range(start, spec.steps):
            if should_stop is not None and should_stop():
                raise JobCancelled(f"training cancelled at step {step} of {spec.steps}")
            bucket = buckets[int(torch.multinomial(weights, 1, generator=data_gen))]
            index = torch.randint(len(bucket), (spec.batch_size,), generator=data_gen).to(device)
            loss_sum += train_step(predictor, bucket, index, spec, noise_gen, params, optimizer, autocast)
            pending += 1
            done = step + 1
            if done % report_every == 0 or done == spec.steps:
                last_loss = float((loss_sum / pending).item())  # the one host sync
                loss_sum.zero_()
                pending = 0
                if not math.isfinite(last_loss):
                    raise TrainingError(f"loss became {last_loss} at step {done}; lower learning_rate")
                if progress is not None:
                    elapsed = time.perf_counter() - t_start
                    eta = elapsed / (done - start) * (spec.steps - done)
                    progress(Progress(done, spec.steps, last_loss, eta))
            if done % spec.checkpoint_every == 0 and done < spec.steps:
                rng = {"data": data_gen.get_state(), "noise": noise_gen.get_state()}
                path = save_checkpoint(ckpt_root, done, lora=get_peft_model_state_dict(transformer),
                                       optimizer=optimizer, rng=rng, meta={"fingerprint": expected})
                if on_checkpoint is not None:
                    on_checkpoint(path, done)
    except torch.OutOfMemoryError as exc:
        raise TrainingError(
            f"out of GPU memory at resolution {spec.resolution}, batch {spec.batch_size}: lower them "
            "or use base_weights nf4/fp8"
        ) from exc

    info = {
        "base_model": spec.base_model, "family": spec.family, "trigger_word": spec.trigger_word,
        "steps": spec.steps, "rank": spec.rank, "alpha": spec.alpha, "learning_rate": spec.learning_rate,
        "resolution": spec.resolution, "batch_size": spec.batch_size,
        "dataset_sha256": dataset.dataset_sha256, "final_loss": last_loss,
    }
    if spec.resolution_note:
        info["resolution_note"] = spec.resolution_note
    lora = {k: v.detach().float().cpu() for k, v in get_peft_model_state_dict(transformer).items()}
    lora_path = save_diffusers_lora(out_dir / f"{name}.safetensors", lora, lora_config, info)
    comfy_path = save_comfy_lora(out_dir / f"{name}.comfyui.safetensors", spec.family, lora, spec.alpha,
                                 info, inner_dim=width)
    report = Path(dataset.report_path)
    if report.exists() and report.resolve() != (out_dir / report.name).resolve():
        shutil.copyfile(report, out_dir / report.name)
    logger.info("trained %s LoRA for %d steps, final loss %s: %s", spec.base_model, spec.steps, last_loss, lora_path)
    return TrainResult(lora_path=lora_path, comfy_path=comfy_path, steps=spec.steps, final_loss=last_loss,
                       metadata=info)
