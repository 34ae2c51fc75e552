"""`loraforge train DATA --base-model ... --trigger-word W --out DIR`: train a LoRA from the shell.

DATA is a .zip or a folder of images (with optional same-name .txt captions). The command
prepares the dataset (safe extraction, checks, buckets, captions), trains with the preset of the
base model plus the flags given, shows a progress bar on stderr, and prints the path of the
diffusers-format LoRA on stdout. Sample sets go to OUT/samples/step-N/K.png, intermediate LoRAs
beside the final one (OUT/lora-step-N.safetensors), the loss per step with its learning rate and
step time to OUT/loss_history.json; sampling's share of the training time goes to stderr.
Unusable data or a bad flag ends with one line on stderr and a non-zero exit code. `--resume` continues from the latest checkpoint in DIR/checkpoints.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from loraforge.errors import DatasetError

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a LoRA from a ZIP or a folder of images")
    p.add_argument("data", type=Path, help="dataset: a .zip or a folder of images")
    p.add_argument("--base-model", required=True, help="QWEN, FLUX or FAST_FLUX")
    p.add_argument("--model", help="base weights: hub id or local diffusers folder (default: LORAFORGE_MODEL_*)")
    p.add_argument("--trigger-word", required=True, help="the word that calls up the LoRA in prompts")
    p.add_argument("--instance-prompt", help="caption for images without a .txt file")
    p.add_argument("--steps", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--rank", type=int)
    p.add_argument("--resolution", type=int, help="longest bucket side in px")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default LORAFORGE_CHECKPOINT_EVERY)")
    p.add_argument("--sample-every", type=int,
                   help="steps between sample sets (default: 4 sets per run, the last at the final step; 0: none)")
    p.add_argument("--sample-prompt", action="append", dest="sample_prompts",
                   help="a sample prompt (repeat for more; default: the trigger word and two captions)")
    p.add_argument("--keep-intermediate", action=argparse.BooleanOptionalAction, default=None,
                   help="keep the LoRA at each sample step as OUT/lora-step-N.safetensors (default: on)")
    p.add_argument("--face-crop", action="store_true", help="crop around the largest face")
    p.add_argument("--auto-caption", action="store_true", help="caption images with Qwen2.5-VL")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the transformer blocks (default: where it pays)")
    p.add_argument("--base-weights", choices=("bf16", "fp8", "nf4"),
                   help="how the base transformer is loaded: bf16, or fp8 (torchao) / nf4 (bitsandbytes) "
                        "for GPUs under ~40 GB (default LORAFORGE_BASE_WEIGHTS or bf16)")
    p.add_argument("--device", help="cuda, cuda:1 or cpu (default: cuda when present)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from loraforge.config import load_settings
    from loraforge.training.loading import resolve_model_ref
    from loraforge.training.presets import fit_to_model, resolve_spec

    settings = load_settings()
    spec = resolve_spec(
        args.base_model, {}, steps=args.steps, learning_rate=args.learning_rate, rank=args.rank,
        resolution=args.resolution, batch_size=args.batch_size, seed=args.seed,
        auto_caption=args.auto_caption or None, face_crop=args.face_crop or None,
        trigger_word=args.trigger_word, instance_prompt=args.instance_prompt, compile=args.compile,
        checkpoint_every=args.checkpoint_every or settings.checkpoint_every,
        sample_every=args.sample_every, sample_prompts=args.sample_prompts, keep_intermediate=args.keep_intermediate,
        base_weights=args.base_weights or settings.base_weights,
    )
    if not args.data.exists():
        raise DatasetError(f"dataset {args.data} does not exist: give a .zip or a folder of images")
    model_ref = resolve_model_ref(spec.base_model, settings, args.model)
    spec = fit_to_model(spec, model_ref, settings)
    if spec.resolution_note:
        print(f"note: {spec.resolution_note}", file=sys.stderr)
    dataset = _prepare(args, spec, settings, model_ref)
    for warning in dataset.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    result = _train(args, spec, dataset, model_ref)
    (args.out / "loss_history.json").write_text(json.dumps(result.loss_history, indent=1))
    if result.samples:
        print(f"samples: {len(result.samples)} images in {args.out / 'samples'}; sampling took "
              f"{result.sample_seconds:.1f} s of {result.loop_seconds:.1f} s training "
              f"({100 * result.sample_share:.1f}%)", file=sys.stderr)
    print(result.lora_path)
    return 0


def _prepare(args: argparse.Namespace, spec, settings, model_ref: str):  # -> PreparedDataset
    from loraforge.datasets.prepare import prepare_dataset

    captioner = None
    if spec.auto_caption:
        from loraforge.training.captioner import captioner_model_ref, load_captioner

        ref = model_ref if spec.family == "qwen" else captioner_model_ref(spec.base_model, settings)
        captioner = load_captioner(ref, args.device)
    try:
        return prepare_dataset(
            args.data, args.out / "dataset", trigger_word=spec.trigger_word,
            instance_prompt=spec.instance_prompt, resolution=spec.resolution, face_crop=spec.face_crop,
            captioner=captioner,
        )
    finally:
        if captioner is not None:
            captioner.close()


def _train(args: argparse.Namespace, spec, dataset, model_ref: str):  # -> TrainResult
    from tqdm import tqdm

    from loraforge.training.engine import Progress, train

    with tqdm(total=spec.steps, desc=f"training {spec.base_model}", unit="step", file=sys.stderr,
              disable=None) as bar:

        def show(p: Progress) -> None:
            bar.n = p.step
            bar.set_postfix(loss=f"{p.loss:.4f}" if p.loss is not None else "-", refresh=False)
            bar.refresh()

        return train(spec, dataset, args.out, model_ref=model_ref, progress=show, resume=args.resume,
                     device=args.device)
