"""GPU memory arithmetic: the peak of each stage of a job and of serving, for the real architectures.

Parameter counts are exact: every component of a pipeline is built from its published config on
the meta device (training.architectures; no weights, no memory) and counted. Everything else is an
estimate from published formulas, each constant below with its source:

- Weights: bf16 2 bytes/parameter. fp8 (torchao Float8WeightOnlyConfig): 1 byte per weight of
  each `nn.Linear` of the transformer, other parameters bf16. nf4 (bitsandbytes, blocksize 64,
  fp32 absmax, no double quantization, as training.precision configures it): 0.5 byte + 4/64 byte
  per Linear weight (bitsandbytes docs, "4-bit quantization"). Only the transformer is quantized.
- LoRA: rank x (in + out) parameters per targeted Linear (Hu et al. 2021, arXiv:2106.09685), kept in
  fp32 with an fp32 gradient and AdamW's two fp32 moments (Loshchilov & Hutter 2019; torch.optim.AdamW
  keeps exp_avg and exp_avg_sq): 16 bytes per LoRA parameter.
- Training activations per transformer block: 34·s·b·h bytes with 16-bit activations and an
  attention kernel that does not store the s x s scores (Korthikanti et al. 2022, "Reducing
  Activation Recomputation in Large Transformer Models", arXiv:2205.05198, eq. 1 without the 5as/h
  term, which SDPA's flash/memory-efficient kernels remove). s = image tokens + text tokens (the
  MMDiT blocks attend jointly over both), h = the transformer's width, b = batch. With gradient
  checkpointing each block keeps only its input (2·s·b·h bytes) and one block at a time holds its
  full activations during recompute (ibid. section 4.1).
- Inference activations of one block: 12·s·b·h bytes (q, k, v, attention output and the 4h MLP
  hidden state before and after its activation, in bf16); Qwen-Image's true CFG runs batch 2.
- VAE: 6 feature maps of the widest full-resolution layer (its first/last block's channels) alive
  at once in bf16 (a ResNet block's input, norm, activation, conv output and residual plus the
  next conv's input). An estimate to check against bench/gpu_train.py, not a published figure.
- Text encoders at inference: one layer's 2·s·(4h + 2·ff) bytes; small beside the weights.
- CUDA context, cuBLAS/cuDNN workspaces and allocator slack: 1.0 GB per process (PyTorch's
  "CUDA semantics" notes put the context alone at several hundred MB; a rounded allowance).

Image tokens are (resolution / 16)^2 for both families (VAE downsampling 8 x 2x2 patches); text
tokens are the preset's max_sequence_length (an upper bound for Qwen, which does not pad). GB is
10^9 bytes, and a card is counted at its marketed size in GB, a little under what it has (an
"80 GB" H100 reports 85.5 x 10^9 bytes), so the plan errs on the safe side.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from loraforge.training.loading import Family

GB = 10**9
CARDS_GB = (24, 48, 80, 141)
BF16 = 2
FP32 = 4
LINEAR_BYTES = {"bf16": 2.0, "fp8": 1.0, "nf4": 0.5 + 4 / 64}
LORA_BYTES_PER_PARAM = FP32 * 4  # weight, gradient, AdamW exp_avg, exp_avg_sq
TRAIN_ACT_COEFF = 34  # Korthikanti et al. 2022, eq. 1 without attention scores
CHECKPOINT_ACT_COEFF = 2  # a block's saved input, bf16
INFER_ACT_COEFF = 12
VAE_LIVE_MAPS = 6
OVERHEAD_BYTES = 1.0 * GB
DEPLOY_RESOLUTION = 64  # inference.deploy's warm-up image
SERVE_RESOLUTION = 1024

Weights = Literal["bf16", "fp8", "nf4"]


@dataclass(frozen=True)
class Component:
    """One pipeline component: its parameter count and how many of those are Linear weights."""

    name: str
    label: str
    params: int
    linear_weights: int
    buffer_bytes: int

    def nbytes(self, weights: Weights = "bf16") -> float:
        other = self.params - self.linear_weights
        return other * BF16 + self.linear_weights * LINEAR_BYTES[weights] + self.buffer_bytes


@dataclass(frozen=True)
class Architecture:
    """A full-size pipeline as counted on the meta device."""

    family: Family
    components: tuple[Component, ...]
    width: int  # transformer hidden size h
    blocks: int  # transformer blocks
    lora_params: int  # for the preset's targets at rank 1 (scale by rank)
    vae_channels: int  # widest full-resolution VAE layer
    text: tuple[tuple[str, int, int], ...]  # (component, hidden, ff) of each text encoder

    def part(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)

    @property
    def transformer(self) -> Component:
        return self.part("transformer")

    def pipeline_bytes(self, weights: Weights = "bf16") -> float:
        return sum(c.nbytes(weights if c.name == "transformer" else "bf16") for c in self.components)


@dataclass(frozen=True)
class Options:
    """How a job is run: base weights, gradient checkpointing, encoders offloaded while caching."""

    weights: Weights = "bf16"
    checkpointing: bool = False
    offload: bool = False

    def describe(self) -> str:
        parts = [self.weights, "gradient checkpointing" if self.checkpointing else "no checkpointing"]
        parts.append("encoders offloaded while caching" if self.offload else "encoders on the GPU while caching")
        return ", ".join(parts)


# Cheapest last: the first that fits a card is what the plan recommends for it.
TRAINING_OPTIONS = (
    Options(), Options(checkpointing=True), Options(checkpointing=True, offload=True),
    Options("fp8", True), Options("fp8", True, True), Options("nf4", True), Options("nf4", True, True),
)


@cache
def measure(family: Family, targets: tuple[str, ...], model_dir: str | None = None) -> Architecture:
    """Build every component of `family`'s pipeline on the meta device and count it.

    The published full-size configs (training.architectures) by default; with `model_dir`, the
    configs of that local diffusers folder (the weights an operator configured), weights unread.
    """
    import torch

    from loraforge.training.architectures import COMPONENTS, build_component, build_from_folder

    parts, lora, text, width, blocks, channels = [], 0, [], 0, 0, 0
    for name in ("transformer", *COMPONENTS[family]):
        module = build_from_folder(model_dir, name) if model_dir else build_component(family, name, device="meta")
        linear = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
        label = "MMDiT" if name == "transformer" else COMPONENTS[family][name][0]
        parts.append(Component(name, label, sum(p.numel() for p in module.parameters()),
                               sum(m.weight.numel() for m in linear),
                               sum(b.numel() * BF16 for b in module.buffers())))
        config = module.config
        if name == "transformer":
            lora = sum(m.in_features + m.out_features for n, m in module.named_modules()
                       if isinstance(m, torch.nn.Linear) and _targeted(n, targets))
            blocks = sum(len(getattr(module, attr, ())) for attr in ("transformer_blocks", "single_transformer_blocks"))
            width = config.num_attention_heads * config.attention_head_dim
        elif name == "vae":
            channels = config.block_out_channels[0] if "block_out_channels" in config else config.base_dim
        else:
            config = getattr(config, "text_config", config)
            hidden = getattr(config, "hidden_size", None) or config.d_model
            ff = getattr(config, "intermediate_size", None) or config.d_ff
            text.append((name, hidden, ff))
    return Architecture(family, tuple(parts), width, blocks, lora, channels, tuple(text))


def _targeted(name: str, targets: tuple[str, ...]) -> bool:
    """peft's rule for a `target_modules` list: the module name equals or ends with `.target`."""
    return any(name == t or name.endswith("." + t) for t in targets)


def tokens(resolution: int, text_tokens: int) -> tuple[int, int]:
    """(image tokens, text tokens) of one sample at `resolution` px (square)."""
    return (resolution // 16) ** 2, text_tokens


def vae_bytes(arch: Architecture, resolution: int, batch: int = 1) -> float:
    return VAE_LIVE_MAPS * arch.vae_channels * resolution * resolution * batch * BF16


def text_act_bytes(arch: Architecture, text_tokens: int) -> float:
    return max((2 * text_tokens * (4 * h + 2 * ff) for _, h, ff in arch.text), default=0)


def lora_bytes(arch: Architecture, rank: int) -> float:
    return arch.lora_params * rank * LORA_BYTES_PER_PARAM


def training_act_bytes(arch: Architecture, resolution: int, text_tokens: int, batch: int,
                       checkpointing: bool) -> float:
    s = sum(tokens(resolution, text_tokens))
    per_block = TRAIN_ACT_COEFF * s * batch * arch.width
    if not checkpointing:
        return per_block * arch.blocks
    return CHECKPOINT_ACT_COEFF * s * batch * arch.width * arch.blocks + per_block


@dataclass(frozen=True)
class JobShape:
    """What the memory of a job depends on: the preset's resolution, batch, rank and text length."""

    resolution: int
    batch: int
    rank: int
    text_tokens: int


def caching_peak(arch: Architecture, job: JobShape, opt: Options) -> float:
    """Encoding the dataset's latents and captions, before training (training.cache)."""
    work = {c.name: c.nbytes() for c in arch.components if c.name != "transformer"}
    acts = {name: text_act_bytes(arch, job.text_tokens) for name in work if name.startswith("text")}
    acts["vae"] = vae_bytes(arch, job.resolution)
    resident = arch.transformer.nbytes(opt.weights)
    if opt.offload:  # one encoder on the GPU at a time, the rest in host memory
        return resident + max(work[n] + acts[n] for n in work) + OVERHEAD_BYTES
    return resident + sum(work.values()) + max(acts.values()) + OVERHEAD_BYTES


def training_peak(arch: Architecture, job: JobShape, opt: Options) -> float:
    """The training loop: transformer, LoRA with gradients and AdamW, activations (encoders freed)."""
    acts = training_act_bytes(arch, job.resolution, job.text_tokens, job.batch, opt.checkpointing)
    return arch.transformer.nbytes(opt.weights) + lora_bytes(arch, job.rank) + acts + OVERHEAD_BYTES


def job_peak(arch: Architecture, job: JobShape, opt: Options) -> float:
    return max(caching_peak(arch, job, opt), training_peak(arch, job, opt))


def serving_peak(arch: Architecture, resolution: int = SERVE_RESOLUTION, text_tokens: int = 512) -> float:
    """A bf16 pipeline in the inference runner generating one `resolution` px image."""
    cfg_batch = 2 if arch.family == "qwen" else 1  # Qwen-Image: true CFG; FLUX.1-dev: distilled
    s = sum(tokens(resolution, text_tokens))
    acts = max(INFER_ACT_COEFF * s * cfg_batch * arch.width, vae_bytes(arch, resolution),
               text_act_bytes(arch, text_tokens))
    return arch.pipeline_bytes() + acts + OVERHEAD_BYTES


def deploy_peak(arch: Architecture) -> float:
    """The deploy check: the served pipeline rendering one 64 px, 2-step image."""
    return serving_peak(arch, DEPLOY_RESOLUTION, text_tokens=512)


def cheapest_fit(arch: Architecture, job: JobShape, card_bytes: float) -> tuple[Options, float] | None:
    """The first of TRAINING_OPTIONS whose job peak fits in `card_bytes`, with that peak."""
    for opt in TRAINING_OPTIONS:
        peak = job_peak(arch, job, opt)
        if peak <= card_bytes:
            return opt, peak
    return None


def smallest_job_peak(arch: Architecture, job: JobShape) -> float:
    return min(job_peak(arch, job, opt) for opt in TRAINING_OPTIONS)


def describe_counts(arch: Architecture) -> list[dict[str, Any]]:
    """Per component: label, parameters, bf16 bytes (for printing or JSON)."""
    return [{"component": c.name, "label": c.label, "params": c.params, "bf16_bytes": c.nbytes()}
            for c in arch.components]
