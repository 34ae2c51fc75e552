"""CPU training speed: loraforge's loop against diffusers' train_dreambooth_lora_flux.py.

Both train the same mid-size random-weight FLUX (3072 -> 256 wide: 2 double + 4 single blocks,
4 heads x 64, 16-channel VAE; built here with the local tokenizers) on the same images, with the
same steps, batch size 1, resolution, text length, rank and the same 12 target modules. The
reference gets its best option, `--cache_latents`. Each run is a fresh process; the time of a step
is the gap between consecutive optimizer steps (an optimizer hook around the unmodified script;
loraforge's per-step progress callback), averaged over steps 2..N so one-off warm-up (compile)
is left out and reported apart.

    python bench/train_speed.py --reference-script /path/to/train_dreambooth_lora_flux.py \
        --torchvision-dir DIR [--steps 30 --resolution 128 --max-seq 128]

The script comes from github.com/huggingface/diffusers (examples/dreambooth); it is not committed.
On this CPU it needs torchvision's pure-Python transforms: install them apart with
`pip install --no-deps --target DIR torchvision`; this bench adds a sitecustomize shim that lets
them import beside the CPU torch.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's loraforge first (children get it via PYTHONPATH)
PROMPT = "a photo of sks dog"
SHIM = '''
try:  # torchvision's wheel registers fake kernels for ops its missing C++ library would define
    import torch
    _lib = torch.library.Library("torchvision", "FRAGMENT")
    for _op in ("nms", "qnms"):
        try:
            _lib.define(_op + "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        except Exception:
            pass
except Exception:
    pass
'''


def build_mid_flux(path: Path) -> Path:
    """A FLUX pipeline 256 wide, big enough that the transformer's compute dominates on a CPU."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from loraforge.families.tokenizers import build_clip_tokenizer, build_t5_tokenizer

    if (path / "model_index.json").exists():
        return path
    clip_tok, t5_tok = build_clip_tokenizer(), build_t5_tokenizer()
    width = 256
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=2, num_single_layers=4, attention_head_dim=64,
        num_attention_heads=4, joint_attention_dim=width, pooled_projection_dim=width, guidance_embeds=True,
        axes_dims_rope=[16, 24, 24])
    clip = CLIPTextModel(CLIPTextConfig(
        bos_token_id=clip_tok.bos_token_id, eos_token_id=clip_tok.eos_token_id, pad_token_id=clip_tok.pad_token_id,
        hidden_size=width, intermediate_size=4 * width, num_attention_heads=4, num_hidden_layers=2,
        vocab_size=len(clip_tok), hidden_act="quick_gelu", projection_dim=width, max_position_embeddings=77))
    t5 = T5EncoderModel(T5Config(
        vocab_size=len(t5_tok), d_model=width, d_kv=64, d_ff=4 * width, num_layers=2, num_heads=4,
        relative_attention_num_buckets=32, feed_forward_proj="gated-gelu", pad_token_id=t5_tok.pad_token_id,
        eos_token_id=t5_tok.eos_token_id, decoder_start_token_id=0))
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, sample_size=128, down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=(32, 64, 128, 128), layers_per_block=1,
        latent_channels=16, norm_num_groups=32, use_quant_conv=False, use_post_quant_conv=False,
        shift_factor=0.1159, scaling_factor=0.3611)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15)
    FluxPipeline(scheduler=scheduler, text_encoder=clip, text_encoder_2=t5, tokenizer=clip_tok, tokenizer_2=t5_tok,
                 transformer=transformer, vae=vae).save_pretrained(path)
    return path


def write_images(folder: Path, count: int, resolution: int) -> Path:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 255, size=(resolution, resolution, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    return folder


def stamp() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def summarize(stamps: list[tuple[float, float]], label: str) -> dict:
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(stamps)]
    # CPU seconds of the process per step: steadier than wall time on a shared, loaded machine.
    cpu = [b[1] - a[1] for a, b in itertools.pairwise(stamps)]
    return {"label": label, "steps": len(stamps), "mean_s_per_step": statistics.mean(gaps),
            "median_s_per_step": statistics.median(gaps), "steps_per_s": 1 / statistics.mean(gaps),
            "cpu_s_per_step": statistics.mean(cpu), "first_step_to_last_s": stamps[-1][0] - stamps[0][0]}


def run_reference(script: str, script_args: list[str]) -> None:
    """In a child process: run the unmodified script, stamping each optimizer step."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    stamps: list[tuple[float, float]] = []
    register_optimizer_step_post_hook(lambda *_: stamps.append(stamp()))
    sys.argv = [script, *script_args]
    start = time.perf_counter()
    runpy.run_path(script, run_name="__main__")
    result = summarize(stamps, "reference")
    result["start_to_first_step_s"] = stamps[0][0] - start
    print("BENCH " + json.dumps(result), flush=True)


def run_ours(model: str, data: str, out: str, steps: int, resolution: int, max_seq: int, rank: int,
             compile_blocks: bool) -> None:
    """In a child process: loraforge's own engine, timed by its per-step progress callback."""
    from loraforge.datasets.prepare import prepare_dataset
    from loraforge.training.engine import train
    from loraforge.training.presets import resolve_spec

    start = time.perf_counter()
    dataset = prepare_dataset(Path(data), Path(out) / "dataset", trigger_word="sks", instance_prompt=PROMPT,
                              resolution=resolution)
    spec = resolve_spec("FLUX", {"steps": steps}, resolution=resolution, rank=rank, alpha=float(rank),
                        batch_size=1, max_sequence_length=max_seq, compile=compile_blocks,
                        checkpoint_every=10 * steps)
    stamps: list[tuple[float, float]] = []
    train(spec, dataset, Path(out), model_ref=model, device="cpu", progress=lambda p: stamps.append(stamp()))
    result = summarize(stamps, "loraforge+compile" if compile_blocks else "loraforge")
    result["start_to_first_step_s"] = stamps[0][0] - start
    print("BENCH " + json.dumps(result), flush=True)


def child(cmd: list[str], env: dict[str, str]) -> dict | None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        print(f"benchmark child failed (exit {proc.returncode}): {' '.join(cmd[2:4])}", flush=True)
        return None
    result = json.loads(lines[-1][6:])
    print("BENCH " + json.dumps(result), flush=True)  # each figure as soon as it exists
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-script", required=True, help="path to train_dreambooth_lora_flux.py")
    parser.add_argument("--torchvision-dir", help="folder holding a --no-deps torchvision install")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temp dir)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--max-seq", type=int, default=128)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per run (2 oversubscribe a shared 2-core box)")
    parser.add_argument("--skip", default="", help="comma list of runs to skip: reference,ours,compile")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="train-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    model = build_mid_flux(work / "flux-mid")
    data = write_images(work / "data", args.images, args.resolution)
    shim = work / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(SHIM)
    paths = [str(shim), *([args.torchvision_dir] if args.torchvision_dir else []), str(REPO)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads),
           "PYTHONPATH": os.pathsep.join(paths), "TOKENIZERS_PARALLELISM": "false"}
    me = [sys.executable, str(Path(__file__).resolve())]
    common = [str(model), str(data)]
    skip = set(filter(None, args.skip.split(",")))
    results = []
    if "reference" not in skip:
        ref_args = [
            "--pretrained_model_name_or_path", str(model), "--instance_data_dir", str(data),
            "--instance_prompt", PROMPT, "--resolution", str(args.resolution), "--train_batch_size", "1",
            "--max_train_steps", str(args.steps), "--rank", str(args.rank), "--mixed_precision", "no",
            "--seed", "0", "--max_sequence_length", str(args.max_seq), "--cache_latents",
            "--checkpointing_steps", str(10 * args.steps), "--output_dir", str(work / "ref-out"),
        ]
        results.append(child([*me, "--child-reference", args.reference_script, *ref_args], env))
    for compiled in (False, True):
        if ("compile" if compiled else "ours") in skip:
            continue
        out = work / ("ours-compiled" if compiled else "ours")
        results.append(child([*me, "--child-ours", *common, str(out), str(args.steps), str(args.resolution),
                              str(args.max_seq), str(args.rank), str(int(compiled))], env))
    results = [r for r in results if r is not None]
    print(f"mid-size FLUX (256 wide, 2+4 blocks), {args.steps} steps, batch 1, {args.resolution} px, "
          f"{args.max_seq} text tokens, rank {args.rank}, 12 target modules, {args.threads} threads")
    for r in results:
        print(f"{r['label']:>18}: {r['mean_s_per_step']:.4f} s/step (median {r['median_s_per_step']:.4f}), "
              f"{r['steps_per_s']:.2f} steps/s, {r['cpu_s_per_step']:.4f} CPU s/step; "
              f"start to first step {r['start_to_first_step_s']:.1f} s")
    ref = next((r for r in results if r["label"] == "reference"), None)
    for r in results:
        if ref and r is not ref:
            print(f"{r['label']} / reference: {r['steps_per_s'] / ref['steps_per_s']:.2f}x steps/s (wall), "
                  f"{ref['cpu_s_per_step'] / r['cpu_s_per_step']:.2f}x by CPU time")
    print("JSON " + json.dumps(results))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-reference":
        run_reference(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-ours":
        m, d, o, st, res, seq, rk, comp = sys.argv[2:10]
        run_ours(m, d, o, int(st), int(res), int(seq), int(rk), bool(int(comp)))
    else:
        main()
