"""Inference benchmarks: LoRA switching against a pipeline reload, throughput, and GPU latency.

CPU mode (default) uses the tiny models and the service's own InferenceRunner:
  * reload: what serving a different LoRA costs without a cache, i.e. load the base pipeline from
    disk and load the LoRA into it (the reference);
  * cold LoRA: the runner with a cache of one, so every switch deletes one adapter and loads the
    other from disk (the base stays loaded);
  * switch: the runner with both LoRAs cached, so a switch is `set_adapters`;
  * throughput: sequential 64 px requests alternating between the two LoRAs, in requests/s.

Evict mode measures the memory budget's price on the tiny models: requests alternating between
QWEN and FLUX (each with its LoRA) through a runner whose LORAFORGE_GPU_MEMORY_GB holds one base
pipeline, so every request evicts the other and reloads its own, against the same requests with a
budget that holds both (the reference, no eviction), as a ratio.

GPU mode builds FLUX.1-dev's architecture with random bf16 weights (the full transformer from
loraforge.training.architectures and a full-size FLUX VAE; random text embeddings of the T5/CLIP
shapes stand in for the text encoders, which run once per prompt and are not what compile speeds
up), attaches a rank-16 LoRA as the service does, and times 1024 px, 28-step generations eager
and with the transformer's repeated blocks compiled (torch.compile, regional).

    python bench/inference.py [--repeats 10] [--requests 40] [--steps 2] [--threads 1]
    python bench/inference.py evict [--requests 20] [--steps 2]
    python bench/inference.py gpu [--size 1024] [--steps 28] [--runs 3]
    python bench/inference.py gpu --device cpu --smoke --size 64 --steps 2 --runs 1   # code path check
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's loraforge first


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def cpu_bench(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from loraforge.config import load_settings
    from loraforge.inference.adapters import load_adapter
    from loraforge.inference.request import GenerationRequest
    from loraforge.inference.runner import InferenceRunner
    from loraforge.training.loading import dtype_for, ensure_tiny_models, read_pipeline
    from tests.support.loras import write_random_lora

    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    family, base_model = args.family, args.family.upper()
    model_dir = ensure_tiny_models(work / "tiny")[family]
    loras = [write_random_lora(model_dir, family, seed, work / f"lora{seed}") for seed in (1, 2)]
    settings = load_settings(data_dir=work / "data", model_flux=str(model_dir), model_qwen=str(model_dir))

    reload_s = []
    for i in range(args.repeats):
        started = time.perf_counter()
        pipe = read_pipeline(family, str(model_dir), dtype_for("cpu"))
        load_adapter(pipe, loras[i % 2], "bench", base_model=base_model)
        reload_s.append(time.perf_counter() - started)
        del pipe

    def switches(runner: InferenceRunner) -> list[float]:
        for lora in loras:  # fill the cache (and load the base) before timing
            runner.load_lora(base_model=base_model, lora_path=lora)
        samples = []
        for i in range(args.repeats):
            started = time.perf_counter()
            runner.load_lora(base_model=base_model, lora_path=loras[i % 2])
            samples.append(time.perf_counter() - started)
        return samples

    cold_s = switches(InferenceRunner(settings.model_copy(update={"inference_cache_size": 1})))
    runner = InferenceRunner(settings)
    switch_s = switches(runner)

    request = GenerationRequest(prompt="a photo of a cat", width=64, height=64,
                                num_inference_steps=args.steps, seed=0)
    runner.generate(request, base_model=base_model, lora_path=loras[0])  # warm-up
    started = time.perf_counter()
    for i in range(args.requests):
        runner.generate(request, base_model=base_model, lora_path=loras[i % 2])
    elapsed = time.perf_counter() - started
    return {
        "mode": "cpu", "family": family, "torch_threads": torch.get_num_threads(),
        "reload_pipeline_and_lora_ms": _median_ms(reload_s),
        "cold_lora_load_ms": _median_ms(cold_s),
        "cached_switch_ms": _median_ms(switch_s),
        "reload_over_switch": round(statistics.median(reload_s) / statistics.median(switch_s), 1),
        "reload_over_cold_lora": round(statistics.median(reload_s) / statistics.median(cold_s), 1),
        "requests": args.requests, "steps": args.steps, "size": 64,
        "requests_per_s": round(args.requests / elapsed, 2),
        "base_loads": runner.base_loads, "lora_loads": runner.lora_loads,
    }


def evict_bench(args: argparse.Namespace) -> dict[str, Any]:
    from loraforge.config import load_settings
    from loraforge.inference.request import GenerationRequest
    from loraforge.inference.runner import InferenceRunner
    from loraforge.training.loading import ensure_tiny_models
    from tests.support.loras import write_random_lora

    work = Path(tempfile.mkdtemp(prefix="bench-evict-"))
    models = ensure_tiny_models(work / "tiny")
    loras = {family: write_random_lora(models[family], family, 1, work / f"lora-{family}") for family in models}
    settings = load_settings(data_dir=work / "data", model_flux=str(models["flux"]), model_qwen=str(models["qwen"]))
    request = GenerationRequest(prompt="a photo of a cat", width=64, height=64,
                                num_inference_steps=args.steps, seed=0)

    def alternate(budget_gb: float) -> tuple[float, InferenceRunner]:
        runner = InferenceRunner(settings.model_copy(update={"gpu_memory_gb": budget_gb}))
        for family in ("qwen", "flux"):  # first loads are not part of the steady state
            runner.generate(request, base_model=family.upper(), lora_path=loras[family])
        started = time.perf_counter()
        for i in range(args.requests):
            family = ("qwen", "flux")[i % 2]
            runner.generate(request, base_model=family.upper(), lora_path=loras[family])
        return (time.perf_counter() - started) / args.requests, runner

    both_s, both = alternate(1.0)
    one_s, one = alternate(0.002)
    return {
        "mode": "evict", "requests": args.requests, "steps": args.steps, "size": 64,
        "budget_for_both_ms_per_request": round(both_s * 1000, 1),
        "budget_for_one_ms_per_request": round(one_s * 1000, 1),
        "evicting_over_resident": round(one_s / both_s, 1),
        "base_loads": {"both": both.base_loads, "one": one.base_loads},
        "base_evictions": {"both": both.base_evictions, "one": one.base_evictions},
    }


def _flux_pipeline(device: str, dtype: Any, smoke: bool) -> Any:
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline
    from peft import LoraConfig

    from loraforge.training.architectures import build_transformer

    small = {"num_layers": 1, "num_single_layers": 1, "num_attention_heads": 2} if smoke else {}
    transformer = build_transformer("flux", device=device, dtype=dtype, **small)
    vae = AutoencoderKL(  # FLUX.1-dev's VAE config: 16 latent channels, scale 8
        in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
        layers_per_block=2, norm_num_groups=32, use_quant_conv=False, use_post_quant_conv=False,
        shift_factor=0.1159, scaling_factor=0.3611, sample_size=1024,
    ).to(device=device, dtype=dtype)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                                                max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=None, tokenizer=None,
                        text_encoder_2=None, tokenizer_2=None, transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    # Served models carry a LoRA; rank 16 on the attention projections like the presets.
    transformer.add_adapter(LoraConfig(r=16, lora_alpha=16, init_lora_weights="gaussian",
                                       target_modules=["to_q", "to_k", "to_v", "to_out.0"]), adapter_name="bench")
    return pipe


def gpu_bench(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    device = args.device or "cuda"
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
    pipe = _flux_pipeline(device, dtype, args.smoke)
    generator = torch.Generator(device="cpu")
    embeds = torch.randn(1, 512, 4096, generator=generator.manual_seed(0)).to(device, dtype)
    pooled = torch.randn(1, 768, generator=generator).to(device, dtype)

    def run() -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.inference_mode():
            pipe(prompt_embeds=embeds, pooled_prompt_embeds=pooled, width=args.size, height=args.size,
                 num_inference_steps=args.steps, guidance_scale=3.5, generator=generator.manual_seed(1),
                 output_type="pil")
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - started

    results: dict[str, Any] = {"mode": "gpu", "device": device, "size": args.size, "steps": args.steps}
    if device.startswith("cuda"):
        results["gpu"] = torch.cuda.get_device_name()
    for label in ("eager", "compiled"):
        if label == "compiled":
            started = time.perf_counter()
            pipe.transformer.compile_repeated_blocks(fullgraph=False, dynamic=False)
            run()  # compiles on first call
            results["compile_s"] = round(time.perf_counter() - started, 1)
        else:
            run()  # warm-up: allocator, cuDNN autotune
        samples = [run() for _ in range(args.runs)]
        results[f"{label}_s"] = round(statistics.median(samples), 3)
    results["compile_speedup"] = round(results["eager_s"] / results["compiled_s"], 2)
    if device.startswith("cuda"):
        results["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=("cpu", "evict", "gpu"), default="cpu")
    parser.add_argument("--family", choices=("flux", "qwen"), default="flux", help="cpu mode: tiny model")
    parser.add_argument("--repeats", type=int, default=10, help="cpu mode: timed reloads and switches")
    parser.add_argument("--requests", type=int, default=40, help="cpu mode: timed generations")
    parser.add_argument("--steps", type=int, help="denoising steps (cpu default 2, gpu default 28)")
    parser.add_argument("--size", type=int, default=1024, help="gpu mode: width and height")
    parser.add_argument("--runs", type=int, default=3, help="gpu mode: timed generations per variant")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--device", help="gpu mode: device (default cuda)")
    parser.add_argument("--smoke", action="store_true", help="gpu mode: a 1+1-block transformer (code check)")
    args = parser.parse_args()
    args.steps = args.steps or (28 if args.mode == "gpu" else 2)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    results = {"gpu": gpu_bench, "evict": evict_bench, "cpu": cpu_bench}[args.mode](args)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
