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
- On the CPU the trainer runs in fp32 (training.loading.dtype_for): unquantized weights and
  activations take 4 bytes instead of 2, and there is no CUDA context (`Options.unit`, `.context`).

Each stage is a `Stage`: its `counted` bytes (parameters, buffers and the LoRA's optimizer state:
exact for the architecture) and its `peak` (those plus the CUDA context and the estimated
activations). worker/preflight.py compares both with a job's device budget before it loads anything.

Image tokens are (resolution / 16)^2 for both families (VAE downsampling 8 x 2x2 patches); text
tokens are the preset's max_sequence_length (an upper bound for Qwen, which does not pad). GB is
10^9 bytes, and a card is counted at its marketed size in GB, a little under what it has (an
"80 GB" H100 reports 85.5 x 10^9 bytes), so the plan errs on the safe side.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from loraforge.families.registry import BY_KEY
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
    buffers: int  # elements

    def nbytes(self, weights: Weights = "bf16", unit: int = BF16) -> float:
        """Bytes held: Linear weights as `weights` ("bf16": unquantized), the rest at `unit` bytes each."""
        linear = unit if weights == "bf16" else LINEAR_BYTES[weights]
        return (self.params - self.linear_weights + self.buffers) * unit + self.linear_weights * linear


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

    def pipeline_bytes(self, weights: Weights = "bf16", unit: int = BF16) -> float:
        return sum(c.nbytes(weights if c.name == "transformer" else "bf16", unit) for c in self.components)


@dataclass(frozen=True)
class Options:
    """How a job is run: base weights and gradient checkpointing.

    `unit` is the bytes of an unquantized weight or activation (2 in bf16 on a GPU, 4 in fp32 on
    the CPU) and `context` the per-process CUDA allowance (0 on the CPU).
    """

    weights: Weights = "bf16"
    checkpointing: bool = False
    unit: int = BF16
    context: float = OVERHEAD_BYTES

    @property
    def act_scale(self) -> float:
        """Activation estimates are for 16-bit activations: fp32 doubles them."""
        return self.unit / BF16

    @property
    def host(self) -> bool:
        """On the CPU (fp32, training.loading.dtype_for) the device is the host memory the pipeline is read into."""
        return self.unit == FP32

    def describe(self) -> str:
        return ", ".join([self.weights, "gradient checkpointing" if self.checkpointing else "no checkpointing"])


# Cheapest last: the first that fits a card is what the plan recommends for it.
TRAINING_OPTIONS = (Options(), Options(checkpointing=True), Options("fp8", True), Options("nf4", True))


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
                               sum(b.numel() for b in module.buffers())))
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


def architecture_folder(model_ref: str | None) -> str | None:
    """The diffusers folder whose configs describe the weights `model_ref` names, if one is here.

    A local folder holding model_index.json is itself; a hub id is its snapshot in the Hugging Face
    cache once `loraforge models pull` (or a job) fetched it. Otherwise None: the family's published
    configs stand for it, and nothing is downloaded.
    """
    if not model_ref:
        return None
    folder = Path(model_ref).expanduser()
    if (folder / "model_index.json").is_file():
        return str(folder.resolve())
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(model_ref, "model_index.json")
    except ValueError:  # not a hub id either (huggingface_hub's HFValidationError is a ValueError)
        return None
    return str(Path(cached).parent) if isinstance(cached, str) else None


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


@dataclass(frozen=True)
class Stage:
    """One stage's memory: `counted` (parameters, buffers, LoRA state: exact), `peak` (plus the
    CUDA context and the estimated activations), both in bytes."""

    name: str
    counted: float
    peak: float


def caching_stage(arch: Architecture, job: JobShape, opt: Options) -> Stage:
    """Encoding the dataset's latents and captions, before training (training.cache.build_cache).

    The pipeline is read into host memory; the VAE comes to the device and encodes the images, then
    the text encoders join it for the captions. The transformer stays in host memory until they are
    freed, except a quantized one, which loads onto the device. On the CPU the host holds it all.
    """
    unit = opt.unit
    vae = arch.part("vae").nbytes(unit=unit)
    text = sum(c.nbytes(unit=unit) for c in arch.components if c.name.startswith("text"))
    resident = arch.transformer.nbytes(opt.weights, unit) if opt.host or opt.weights != "bf16" else 0.0
    image = vae_bytes(arch, job.resolution) * opt.act_scale  # the VAE encoding one image
    captions = text + text_act_bytes(arch, job.text_tokens) * opt.act_scale  # then the text encoders too
    return Stage("load", resident + vae + text, resident + vae + max(image, captions) + opt.context)


def training_stage(arch: Architecture, job: JobShape, opt: Options, keep_vae: bool = False) -> Stage:
    """The training loop: transformer, LoRA with gradients and AdamW, activations (encoders freed;
    the VAE stays when sample sets are rendered, `keep_vae`)."""
    acts = training_act_bytes(arch, job.resolution, job.text_tokens, job.batch, opt.checkpointing)
    counted = arch.transformer.nbytes(opt.weights, opt.unit) + lora_bytes(arch, job.rank)
    if keep_vae:
        counted += arch.part("vae").nbytes(unit=opt.unit)
    return Stage("train", counted, counted + acts * opt.act_scale + opt.context)


def serving_stage(arch: Architecture, opt: Options, resolution: int = SERVE_RESOLUTION, text_tokens: int = 512,
                  rank: int = 0) -> Stage:
    """An unquantized pipeline (with a rank-`rank` LoRA) in the inference runner, one image."""
    cfg_batch = 2 if BY_KEY[arch.family].true_cfg else 1  # Qwen-Image: true CFG; FLUX.1-dev: distilled
    s = sum(tokens(resolution, text_tokens))
    acts = max(INFER_ACT_COEFF * s * cfg_batch * arch.width, vae_bytes(arch, resolution),
               text_act_bytes(arch, text_tokens))
    counted = arch.pipeline_bytes(unit=opt.unit) + arch.lora_params * rank * opt.unit
    return Stage("deploy", counted, counted + acts * opt.act_scale + opt.context)


def deploy_stage(arch: Architecture, opt: Options, rank: int = 0) -> Stage:
    """The deploy check: the served pipeline with the new LoRA rendering one 64 px, 2-step image."""
    return serving_stage(arch, opt, DEPLOY_RESOLUTION, text_tokens=512, rank=rank)


def caching_peak(arch: Architecture, job: JobShape, opt: Options) -> float:
    """Peak bytes while latents and caption embeddings are cached (caching_stage's peak)."""
    return caching_stage(arch, job, opt).peak


def training_peak(arch: Architecture, job: JobShape, opt: Options, keep_vae: bool = True) -> float:
    """Peak bytes of the training loop (training_stage's peak); the VAE stays by default because a
    job renders sample sets unless `sample_every` turns them off."""
    return training_stage(arch, job, opt, keep_vae).peak


def job_peak(arch: Architecture, job: JobShape, opt: Options) -> float:
    """Peak bytes of a whole training job with sample sets: the larger of caching and training."""
    return max(caching_peak(arch, job, opt), training_peak(arch, job, opt))


def serving_peak(arch: Architecture, resolution: int = SERVE_RESOLUTION, text_tokens: int = 512) -> float:
    """A bf16 pipeline in the inference runner generating one `resolution` px image."""
    return serving_stage(arch, Options(), resolution, text_tokens).peak


def deploy_peak(arch: Architecture) -> float:
    """Peak bytes of the deploy check in bf16 (deploy_stage's peak)."""
    return deploy_stage(arch, Options()).peak


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
