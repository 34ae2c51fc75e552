"""The training loop: flow-matching LoRA training of Qwen-Image or FLUX.1-dev on a prepared dataset.

Read top to bottom: read the pipeline into host memory, cache latents and text embeddings once
(the VAE, then the text encoders on the device), free the encoders and move the transformer to
the device, attach the LoRA, restore the latest checkpoint when resuming, then for each step draw a
bucket and a batch, a fresh latent sample, noise and a timestep (logit-normal, shifted or
uniform), predict the velocity `noise - latents`, and step AdamW. All randomness comes from two
seeded generators whose states the checkpoints keep, so a resumed run equals an uninterrupted
one. The loss is read back to the host only when progress is reported (every step on the CPU,
every few on a GPU, and at each sample step), to keep the device queue full. At the sample
steps the LoRA as it stands is saved (intermediate LoRAs) and a sample set is rendered with the
pipeline already loaded (training/sampling.py); its time is measured apart from the steps'.
`should_stop` is checked at each step boundary and ends the run with JobCancelled.
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
from loraforge.families.registry import BY_KEY
from loraforge.training.cache import Bucket, DatasetLike, build_cache, free_encoders
from loraforge.training.checkpoints import fingerprint, list_checkpoints, load_checkpoint, save_checkpoint
from loraforge.training.export import save_comfy_lora, save_diffusers_lora
from loraforge.training.loading import default_device, dtype_for, read_pipeline
from loraforge.training.oom import trainer_oom_message
from loraforge.training.precision import (
    compile_blocks,
    is_cuda,
    quantized_transformer,
    use_compile,
    use_gradient_checkpointing,
)
from loraforge.training.presets import TrainSpec
from loraforge.training.sampling import Sampler, encode_prompts, plan_samples

logger = logging.getLogger(__name__)

GPU_REPORT_EVERY = 10


@dataclass(frozen=True)
class Progress:
    """One progress report: `loss` is the mean over the steps since the last report.

    `lr` is the optimizer's learning rate at `step`; `step_seconds` the mean wall time of those
    training steps (sampling excluded); `eta_seconds` the time left at the pace so far.
    """

    step: int
    total_steps: int
    loss: float | None
    eta_seconds: float | None
    lr: float | None = None
    step_seconds: float | None = None


@dataclass(frozen=True)
class SampleImage:
    step: int
    index: int  # the prompt's position in the sample prompts
    prompt: str
    path: Path


@dataclass(frozen=True)
class TrainResult:
    """What a run wrote and how long it took.

    `loop_seconds` is the wall time of the training loop including sampling, `sample_seconds` the
    part spent rendering sample sets (and saving intermediate LoRAs); `sample_share` their ratio.
    `loss_history` holds one {step, loss, lr, step_seconds} per progress report.
    """

    lora_path: Path
    comfy_path: Path
    steps: int
    final_loss: float | None
    metadata: dict[str, Any] = field(default_factory=dict)
    samples: list[SampleImage] = field(default_factory=list)
    intermediates: dict[int, Path] = field(default_factory=dict)
    loss_history: list[dict[str, float | int | None]] = field(default_factory=list)
    loop_seconds: float = 0.0
    sample_seconds: float = 0.0

    @property
    def sample_share(self) -> float:
        return self.sample_seconds / self.loop_seconds if self.loop_seconds > 0 else 0.0


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
    config = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, init_lora_weights="gaussian",  # type: ignore[arg-type]  # peft says int; a float alpha works
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
          on_sample: Callable[[int, int, str, Path], None] | None = None,
          on_intermediate: Callable[[int, Path], None] | None = None,
          resume: bool = False, device: str | None = None, name: str = "lora") -> TrainResult:
    """Train a LoRA for `spec` on `dataset`; writes out_dir/{name}.safetensors and its ComfyUI copy.

    Sample sets go to out_dir/samples/step-{n}/{k}.png (`on_sample(step, k, prompt, path)` after
    each image) and, with keep_intermediate, the LoRA at each sample step before the last to
    out_dir/{name}-step-{n}.safetensors (`on_intermediate(step, path)`). Raises JobCancelled when
    `should_stop` answers True, TrainingError for a diverged loss or out of memory.
    """
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

    device = device or default_device()
    ops = BY_KEY[spec.family].adapter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_root = out_dir / "checkpoints"
    expected = fingerprint(spec, dataset.dataset_sha256)
    found = list_checkpoints(ckpt_root) if resume else []
    state = load_checkpoint(found[-1], expected) if found else None
    if resume and state is None:
        logger.info("no checkpoint in %s; training from step 0", ckpt_root)
    if state is not None and state["step"] > spec.steps:
        raise TrainingError(f"cannot resume at step {state['step']} for a run of {spec.steps} steps; "
                            f"ask for more than {state['step']} steps, or start without --resume")
    if not resume and ckpt_root.exists():
        # A fresh run must not keep (or later prefer) another run's checkpoints.
        logger.info("removing old checkpoints in %s (resume not asked)", ckpt_root)
        shutil.rmtree(ckpt_root)

    extra = {}
    transformer_q = quantized_transformer(spec.family, model_ref, spec.base_weights, device)
    if transformer_q is not None:
        extra["transformer"] = transformer_q
    # Read into host memory (a quantized transformer is placed as it loads); the device gets only
    # what each stage uses: the VAE and text encoders while caching, then the transformer.
    pipe = read_pipeline(spec.family, model_ref, dtype_for(device), **extra)
    buckets = build_cache(pipe, ops, dataset, spec, device)
    plan = plan_samples(spec, [item.caption for item in dataset.items])
    # Sample prompts are encoded now, while the text encoders are loaded; the pipeline keeps
    # the transformer, VAE and scheduler for rendering, so sampling never reloads the model.
    sample_embeds = encode_prompts(pipe, ops, plan, spec) if plan is not None else []
    transformer = free_encoders(pipe, device, keep_vae=plan is not None)
    if plan is None:
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

    info = {
        "base_model": spec.base_model, "family": spec.family, "trigger_word": spec.trigger_word,
        "steps": spec.steps, "rank": spec.rank, "alpha": spec.alpha, "learning_rate": spec.learning_rate,
        "resolution": spec.resolution, "batch_size": spec.batch_size,
        "dataset_sha256": dataset.dataset_sha256,
    }
    if spec.resolution_note:
        info["resolution_note"] = spec.resolution_note

    def lora_now() -> dict[str, torch.Tensor]:
        return {k: v.detach().float().cpu() for k, v in get_peft_model_state_dict(transformer).items()}

    predictor = ops.Predictor(transformer, spec)
    weights = torch.tensor([len(b) for b in buckets], dtype=torch.float)
    report_every = GPU_REPORT_EVERY if is_cuda(device) else 1
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=is_cuda(device))
    sampler = Sampler(pipe, plan, sample_embeds, spec, autocast) if plan is not None else None
    sample_at = set(plan.steps) if plan is not None else set()
    samples: list[SampleImage] = []
    intermediates: dict[int, Path] = {}
    history: list[dict[str, float | int | None]] = []
    loss_sum = torch.zeros((), device=device)
    pending, last_loss, sample_seconds = 0, None, 0.0
    t_start = window = time.perf_counter()
    try:
        for step in range(start, spec.steps):
            if should_stop is not None and should_stop():
                raise JobCancelled(f"training cancelled at step {step} of {spec.steps}")
            bucket = buckets[int(torch.multinomial(weights, 1, generator=data_gen))]
            index = torch.randint(len(bucket), (spec.batch_size,), generator=data_gen).to(device)
            loss_sum += train_step(predictor, bucket, index, spec, noise_gen, params, optimizer, autocast)
            pending += 1
            done = step + 1
            if done % report_every == 0 or done == spec.steps or done in sample_at:
                last_loss = float((loss_sum / pending).item())  # the one host sync
                now = time.perf_counter()
                point = {"step": done, "loss": last_loss, "lr": optimizer.param_groups[0]["lr"],
                         "step_seconds": (now - window) / pending}
                loss_sum.zero_()
                pending, window = 0, now
                if not math.isfinite(last_loss):
                    raise TrainingError(f"loss became {last_loss} at step {done}; lower learning_rate")
                history.append(point)
                if progress is not None:
                    eta = (now - t_start) / (done - start) * (spec.steps - done)
                    progress(Progress(done, spec.steps, last_loss, eta, lr=point["lr"],
                                      step_seconds=point["step_seconds"]))
            # The final state is a checkpoint too (kept on disk, not handed to on_checkpoint), so
            # `--resume --steps N` past a finished run continues from where it ended.
            if done % spec.checkpoint_every == 0 or done == spec.steps:
                rng = {"data": data_gen.get_state(), "noise": noise_gen.get_state()}
                path = save_checkpoint(ckpt_root, done, lora=get_peft_model_state_dict(transformer),
                                       optimizer=optimizer, rng=rng, meta={"fingerprint": expected})
                if on_checkpoint is not None and done < spec.steps:
                    on_checkpoint(path, done)
            if sampler is not None and done in sample_at:
                t_sample = time.perf_counter()
                if spec.keep_intermediate and done < spec.steps:
                    path = save_diffusers_lora(out_dir / f"{name}-step-{done}.safetensors", spec.family, lora_now(),
                                               lora_config, {**info, "step": done, "loss": last_loss})
                    intermediates[done] = path
                    if on_intermediate is not None:
                        on_intermediate(done, path)
                for k, image in enumerate(sampler.render(done, out_dir / "samples")):
                    samples.append(SampleImage(done, k, sampler.plan.prompts[k], image))
                    if on_sample is not None:
                        on_sample(done, k, sampler.plan.prompts[k], image)
                window = time.perf_counter()  # the next steps' time excludes sampling
                sample_seconds += window - t_sample
    except torch.OutOfMemoryError as exc:
        raise TrainingError(trainer_oom_message(spec.resolution, spec.batch_size)) from exc
    loop_seconds = time.perf_counter() - t_start

    info["final_loss"] = last_loss
    lora = lora_now()
    lora_path = save_diffusers_lora(out_dir / f"{name}.safetensors", spec.family, lora, lora_config, info)
    comfy_path = save_comfy_lora(out_dir / f"{name}.comfyui.safetensors", spec.family, lora, spec.alpha,
                                 info, inner_dim=width)
    report = Path(dataset.report_path)
    if report.exists() and report.resolve() != (out_dir / report.name).resolve():
        shutil.copyfile(report, out_dir / report.name)
    logger.info("trained %s LoRA for %d steps, final loss %s, sampling %.1f of %.1f s: %s", spec.base_model,
                spec.steps, last_loss, sample_seconds, loop_seconds, lora_path)
    return TrainResult(lora_path=lora_path, comfy_path=comfy_path, steps=spec.steps, final_loss=last_loss,
                       metadata=info, samples=samples, intermediates=intermediates, loss_history=history,
                       loop_seconds=loop_seconds, sample_seconds=sample_seconds)
