"""GPU training speed of the full-size architectures: steps/s, peak memory and MFU.

Builds FLUX.1-dev's or Qwen-Image's transformer from `loraforge.training.architectures` with random
bf16 weights (no download; the text encoders and VAE are left out: training only runs them once,
to fill the cache, so random latents and text embeddings of the right shapes stand in for the
cache), attaches the preset's LoRA and runs loraforge's own `train_step` (the function the engine
loops over) at each resolution. MFU = model FLOPs per step (counted once by
torch.utils.flop_counter on an eager step: forward, activation gradients and attention, no
recompute) / step time / the GPU's dense bf16 peak. Next to the measured peak it prints what
`loraforge plan` predicts for the same training stage (loraforge.training.memory_plan, without the
CUDA-context allowance, which max_memory_allocated does not see), so each GPU run checks the plan.

    python bench/gpu_train.py --preset FAST_FLUX --resolution 512 1024 [--steps 30] [--no-compile]
    python bench/gpu_train.py --preset QWEN --resolution 512 1024 --gradient-checkpointing
    python bench/gpu_train.py --device cpu --smoke --resolution 64 --steps 2 --warmup 1 --no-compile

Design goals (issue 4): FAST_FLUX at 512 px >= 45% MFU on an H100 and >= 2x the steps/s of
diffusers' train_dreambooth_lora_flux.py at equal settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's loraforge first

from loraforge.families.registry import BY_KEY
from loraforge.training.architectures import LATENT_CHANNELS, TEXT, VAE_SCALE, build_transformer
from loraforge.training.cache import Bucket
from loraforge.training.engine import attach_lora, make_optimizer, train_step
from loraforge.training.precision import compile_blocks
from loraforge.training.presets import resolve_spec

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "H800": 989.0, "A100": 312.0, "L40S": 362.0, "B200": 2250.0}


def peak_tflops(explicit: float | None) -> float:
    if explicit:
        return explicit
    name = torch.cuda.get_device_name()
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    raise SystemExit(f"unknown GPU {name!r}: pass --peak-tflops (dense bf16)")


def random_bucket(family: str, size: int, count: int, seq: int, device: str, dtype: torch.dtype) -> Bucket:
    h = w = size // VAE_SCALE
    shape = (count, LATENT_CHANNELS, 1, h, w) if family == "qwen" else (count, LATENT_CHANNELS, h, w)
    g = torch.Generator(device).manual_seed(0)
    mean = torch.randn(shape, generator=g, device=device)
    std = torch.full(shape, 0.05, device=device)
    embeds = torch.randn(count, seq, TEXT[family]["dim"], generator=g, device=device, dtype=dtype)
    if family == "qwen":
        text = {"prompt_embeds": embeds, "mask": torch.ones(count, seq, dtype=torch.long, device=device)}
    else:
        pooled = torch.randn(count, TEXT["flux"]["pooled_dim"], generator=g, device=device, dtype=dtype)
        text = {"prompt_embeds": embeds, "pooled": pooled}
    return Bucket(size=(size, size), mean=mean, std=std, text=text)


def planned_gb(spec: Any, resolution: int, seq: int) -> float:
    """`loraforge plan`'s training peak for this run, in GB (10^9 bytes), CUDA context excluded."""
    from loraforge.training import memory_plan as mp

    arch = mp.measure(spec.family, tuple(spec.target_modules))
    job = mp.JobShape(resolution, spec.batch_size, spec.rank, seq)
    options = mp.Options("bf16", bool(spec.gradient_checkpointing))
    return (mp.training_peak(arch, job, options) - mp.OVERHEAD_BYTES) / 1e9


def bench_one(args: argparse.Namespace, resolution: int) -> dict:
    device = args.device
    spec = resolve_spec(args.preset, {"steps": args.steps}, resolution=resolution, batch_size=args.batch_size,
                        rank=args.rank, gradient_checkpointing=args.gradient_checkpointing)
    seq = args.seq_len or (spec.max_sequence_length if spec.family == "flux" else 128)
    ops = BY_KEY[spec.family].adapter()
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    # --smoke: one block of each kind, to check the script end to end on any machine.
    shrink = {"num_layers": 1} | ({"num_single_layers": 1} if spec.family == "flux" else {})
    dtype = torch.bfloat16 if cuda else torch.float32  # CPUs without AMX crawl in bf16
    transformer = build_transformer(spec.family, device=device, dtype=dtype, **(shrink if args.smoke else {}))
    _, params = attach_lora(transformer, spec)
    if spec.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.train()
    optimizer = make_optimizer(params, spec, device)
    predictor = ops.Predictor(transformer, spec)
    bucket = random_bucket(spec.family, resolution, 8, seq, device, dtype)
    noise_gen = torch.Generator(device).manual_seed(1)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    index = torch.arange(spec.batch_size, device=device) % len(bucket)

    def step() -> torch.Tensor:
        return train_step(predictor, bucket, index, spec, noise_gen, params, optimizer, autocast)

    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops = counter.get_total_flops()
    if args.compile:
        compile_blocks(ops.block_lists(transformer))
    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    loss.item()  # one sync at the end
    elapsed = time.perf_counter() - start
    s_per_step = elapsed / args.steps
    result = {
        "preset": args.preset, "resolution": resolution, "batch_size": spec.batch_size, "text_tokens": seq,
        "rank": spec.rank, "compile": args.compile, "gradient_checkpointing": bool(spec.gradient_checkpointing),
        "s_per_step": s_per_step, "steps_per_s": 1 / s_per_step,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 1024**3 if cuda else float("nan"),
        "peak_mem_gb": torch.cuda.max_memory_allocated() / 1e9 if cuda else float("nan"),
        "plan_peak_gb": None if args.smoke else planned_gb(spec, resolution, seq),
        "model_tflop_per_step": flops / 1e12,
        "mfu": flops / s_per_step / (peak_tflops(args.peak_tflops) * 1e12) if cuda else float("nan"),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="FAST_FLUX", choices=["QWEN", "FLUX", "FAST_FLUX"])
    parser.add_argument("--resolution", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--seq-len", type=int, help="text tokens (default: the preset's; QWEN 128)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of the GPU (default: by name)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="one block per kind: a quick end-to-end check")
    args = parser.parse_args()
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("bench/gpu_train.py needs a CUDA GPU (or --device cpu --smoke for a dry run)")
        torch.backends.cuda.matmul.allow_tf32 = True
        print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    for resolution in args.resolution:
        try:
            r = bench_one(args, resolution)
        except torch.OutOfMemoryError:
            print(f"{args.preset} {resolution}px: out of memory (try --gradient-checkpointing)")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        print(f"{r['preset']} {r['resolution']}px bs{r['batch_size']} txt{r['text_tokens']}: "
              f"{r['steps_per_s']:.2f} steps/s ({r['s_per_step'] * 1000:.0f} ms), peak {r['peak_mem_gib']:.1f} GiB, "
              f"{r['model_tflop_per_step']:.1f} TFLOP/step, MFU {100 * r['mfu']:.1f}%"
              + (f"; peak {r['peak_mem_gb']:.1f} GB against the plan's {r['plan_peak_gb']:.1f} GB"
                 if r["plan_peak_gb"] is not None else ""))
        print("JSON " + json.dumps(r))


if __name__ == "__main__":
    main()
