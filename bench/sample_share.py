"""Sampling's added share of training time: sample sets rendered while training, against none.

Two measurements, both with loraforge's own code:

* `--tiny` (any machine): `loraforge.training.engine.train` on the bundled tiny FLUX demo model,
  twice on the same data and seed: once with `sample_every=0`, once with the default schedule
  (4 sets, the last at the final step) of 2 prompts at 20 sampler steps. Prints both loop times,
  the engine's own `sample_seconds` / `sample_share`, and the added share
  (loop_with - loop_without) / loop_without.
* `--full` (a GPU): FLUX.1-dev's full-size transformer and VAE with random bf16 weights
  (`loraforge.training.architectures`; no download), the pipeline's flow-matching scheduler with
  FLUX.1-dev's published scheduler config, random text embeddings of the real shapes. It times
  training steps (`engine.train_step`) and sample sets (`sampling.Sampler`, the engine's renderer)
  at the resolution given, and extrapolates to the issue's run: 1000 steps with 4 sets of 2
  prompts at 20 steps: share = 4 * set / (1000 * step + 4 * set). `--smoke` shrinks the model to
  one block of each kind, 2 heads wide, 2 sampler steps, so the path runs on a CPU.

    python bench/sample_share.py --tiny [--steps 200 --resolution 64]
    python bench/sample_share.py --full --resolution 512            # GPU
    python bench/sample_share.py --full --smoke --device cpu --resolution 64 --train-steps 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's loraforge first

PROMPTS = ("sks", "a photo of sks on a beach")
SETS, RUN_STEPS, SAMPLER_STEPS = 4, 1000, 20
# black-forest-labs/FLUX.1-dev scheduler/scheduler_config.json
FLUX_SCHEDULER = {"base_image_seq_len": 256, "base_shift": 0.5, "max_image_seq_len": 4096, "max_shift": 1.15,
                  "num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": True}


def tiny(args: argparse.Namespace) -> dict:
    import numpy as np
    from PIL import Image

    from loraforge.datasets.prepare import prepare_dataset
    from loraforge.training.engine import train
    from loraforge.training.presets import resolve_spec
    from loraforge.training.tiny import write_tiny_models

    root = Path(tempfile.mkdtemp(prefix="sample-share-"))
    models = write_tiny_models(root / "models")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(images / f"{i}.png")
    dataset = prepare_dataset(images, root / "data", trigger_word="sks", resolution=args.resolution)
    runs = {}
    for label, sample_every in (("without", 0), ("with", None)):
        spec = resolve_spec("FLUX", {"steps": args.steps, "sample_every": sample_every, "sample_prompts": PROMPTS},
                            resolution=args.resolution, rank=4, checkpoint_every=10**6)
        result = train(spec, dataset, root / label, model_ref=str(models["flux"]), device="cpu")
        runs[label] = result
    without, with_ = runs["without"], runs["with"]
    return {
        "mode": "tiny", "steps": args.steps, "resolution": args.resolution, "sets": len({s.step for s in with_.samples}),
        "prompts": len(PROMPTS), "sampler_steps": SAMPLER_STEPS,
        "loop_s_without": round(without.loop_seconds, 3), "loop_s_with": round(with_.loop_seconds, 3),
        "sample_s": round(with_.sample_seconds, 3), "engine_sample_share": round(with_.sample_share, 4),
        "added_share": round((with_.loop_seconds - without.loop_seconds) / without.loop_seconds, 4),
    }


def full(args: argparse.Namespace) -> dict:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

    from bench.gpu_train import random_bucket
    from loraforge.families.flux import adapter as flux
    from loraforge.training.architectures import TEXT, build_component, build_transformer
    from loraforge.training.engine import attach_lora, make_optimizer, train_step
    from loraforge.training.presets import resolve_spec
    from loraforge.training.sampling import SamplePlan, Sampler

    device = args.device
    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    spec = resolve_spec("FLUX", {"steps": RUN_STEPS}, resolution=args.resolution, compile=False)
    shrink = {"num_layers": 1, "num_single_layers": 1, "num_attention_heads": 2} if args.smoke else {}
    transformer = build_transformer("flux", device=device, dtype=dtype, **shrink)
    _, params = attach_lora(transformer, spec)
    transformer.train()
    vae = build_component("flux", "vae", device=device).to(dtype)
    vae.config.shift_factor, vae.config.scaling_factor = 0.1159, 0.3611  # FLUX.1-dev vae/config.json
    scheduler = FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER)
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=None, tokenizer=None, text_encoder_2=None,
                        tokenizer_2=None, transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    seq = spec.max_sequence_length
    g = torch.Generator(device).manual_seed(0)
    embeds = [{"prompt_embeds": torch.randn(1, seq, TEXT["flux"]["dim"], generator=g, device=device, dtype=dtype),
               "pooled": torch.randn(1, TEXT["flux"]["pooled_dim"], generator=g, device=device, dtype=dtype)}
              for _ in PROMPTS]
    plan = SamplePlan(steps=(RUN_STEPS,), prompts=PROMPTS, size=args.resolution,
                      inference_steps=2 if args.smoke else SAMPLER_STEPS)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    sampler = Sampler(pipe, plan, embeds, spec, autocast)
    optimizer = make_optimizer(params, spec, device)
    predictor = flux.Predictor(transformer, spec)
    bucket = random_bucket("flux", args.resolution, 4, seq, device, dtype)
    noise_gen = torch.Generator(device).manual_seed(1)
    index = torch.arange(spec.batch_size, device=device)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def timed(work, repeat: int) -> float:
        sync()
        start = time.perf_counter()
        for _ in range(repeat):
            work()
        sync()
        return (time.perf_counter() - start) / repeat

    out = Path(tempfile.mkdtemp(prefix="sample-share-full-"))
    step = lambda: train_step(predictor, bucket, index, spec, noise_gen, params, optimizer, autocast)
    timed(step, args.warmup)
    step_s = timed(step, args.train_steps)
    first_set_s = timed(lambda: sampler.render(0, out), 1)  # includes the first inference's one-off costs
    set_s = timed(lambda: sampler.render(1, out), args.sets)
    train_s = RUN_STEPS * step_s
    return {
        "mode": "full" + ("-smoke" if args.smoke else ""), "device": torch.cuda.get_device_name() if cuda else "cpu",
        "resolution": args.resolution, "s_per_train_step": round(step_s, 4), "s_per_set": round(set_s, 3),
        "s_first_set": round(first_set_s, 3), "prompts": len(PROMPTS), "sampler_steps": plan.inference_steps,
        "extrapolated_run": f"{RUN_STEPS} steps, {SETS} sets",
        "added_share": round(SETS * set_s / train_s, 4),
        "share_of_total": round(SETS * set_s / (train_s + SETS * set_s), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--tiny", action="store_true", help="the engine end to end on the tiny demo FLUX (CPU)")
    mode.add_argument("--full", action="store_true", help="full-size FLUX.1-dev with random weights (GPU)")
    parser.add_argument("--steps", type=int, default=200, help="--tiny: training steps per run")
    parser.add_argument("--resolution", type=int, default=None, help="px (default: 64 tiny, 512 full)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--train-steps", type=int, default=20, help="--full: timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="--full: untimed training steps first")
    parser.add_argument("--sets", type=int, default=2, help="--full: timed sample sets (after a first one)")
    parser.add_argument("--smoke", action="store_true", help="--full: one block of each kind, for a CPU check")
    args = parser.parse_args()
    if args.resolution is None:
        args.resolution = 64 if args.tiny else 512
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(json.dumps(tiny(args) if args.tiny else full(args), indent=1))


if __name__ == "__main__":
    main()
