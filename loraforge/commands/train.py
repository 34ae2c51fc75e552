"""`loraforge train DATA --base-model ... --trigger-word W --out DIR`: train a LoRA from the shell.

DATA is a .zip or a folder of images (captions as .txt, .caption or metadata.jsonl/.csv, see
loraforge.datasets.caption_files). The command prepares the dataset (safe extraction, checks,
buckets, captions), prints a `warning:` line per dataset warning (every file not used is named),
trains with the preset of the base model plus the flags given (one flag per advance_parameters
key, from the same schema as the API), shows a progress bar on stderr, and prints the path of the
diffusers-format LoRA on stdout; `--dry-run` stops after preparation and prints the report's path. Sample sets go to OUT/samples/step-N/K.png, intermediate LoRAs
beside the final one (OUT/lora-step-N.safetensors), the loss per step with its learning rate and
step time to OUT/loss_history.json; sampling's share of the training time goes to stderr.
Unusable data or a bad flag ends with one line on stderr and a non-zero exit code. `--resume`
continues from the latest checkpoint in DIR/checkpoints (the final step is one too).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loraforge.errors import DatasetError
from loraforge.families.registry import base_models_in_words

if TYPE_CHECKING:
    from loraforge.config import Settings
    from loraforge.datasets.prepare import PreparedDataset
    from loraforge.training.engine import TrainResult
    from loraforge.training.presets import TrainSpec

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("train", help="train a LoRA from a ZIP or a folder of images")
    p.add_argument("data", type=Path, help="dataset: a .zip or a folder of images")
    p.add_argument("--base-model", required=True, help=base_models_in_words())
    p.add_argument("--model", help="base weights: hub id or local diffusers folder (default: LORAFORGE_MODEL_*)")
    p.add_argument("--trigger-word", required=True, help="the word that calls up the LoRA in prompts")
    p.add_argument("--instance-prompt", help="caption for images without a .txt file")
    _add_advance_flags(p)
    p.add_argument("--seed", type=int)
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default LORAFORGE_CHECKPOINT_EVERY)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the transformer blocks (default: where it pays)")
    p.add_argument("--base-weights", choices=("bf16", "fp8", "nf4"),
                   help="how the base transformer is loaded: bf16, or fp8 (torchao) / nf4 (bitsandbytes) "
                        "for GPUs under ~40 GB (default LORAFORGE_BASE_WEIGHTS or bf16)")
    p.add_argument("--device", help="cuda, cuda:1 or cpu (default: cuda when present)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--dry-run", action="store_true",
                   help="prepare the dataset, print its warnings and report path, and stop before training")
    p.set_defaults(func=run)


def _add_advance_flags(p: argparse.ArgumentParser) -> None:
    """One flag per advance_parameters key (the API's schema), aliases as second spellings."""
    import typing

    from loraforge.training.parameters import base_type
    from loraforge.training.presets import AdvanceParameters, TrainSpec

    for name in AdvanceParameters.model_fields:
        info = TrainSpec.model_fields.get(name)
        if info is None:  # the seeds' stored keys are not training parameters
            continue
        flags = [f"--{n.replace('_', '-')}" for n, target in [(name, name), *AdvanceParameters.ALIASES.items()]
                 if target == name]
        kind = base_type(info.annotation)
        if kind is bool:
            p.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, default=None,
                           help=info.description)
        elif typing.get_origin(kind) is typing.Literal:
            p.add_argument(*flags, dest=name, choices=typing.get_args(kind), help=info.description)
        elif typing.get_origin(kind) in (list, tuple):
            singular = [f.removesuffix("s") for f in flags if f.endswith("s")]  # --sample-prompt P, repeated
            p.add_argument(*singular, *flags, dest=name, action="append", type=typing.get_args(kind)[0],
                           help=f"{info.description} (repeat the flag for several)")
        else:
            p.add_argument(*flags, dest=name, type=kind, help=info.description)


def _advance_values(args: argparse.Namespace) -> dict[str, Any]:
    from loraforge.training.presets import AdvanceParameters, TrainSpec

    return {name: getattr(args, name) for name in AdvanceParameters.model_fields
            if name in TrainSpec.model_fields and getattr(args, name, None) is not None}


def run(args: argparse.Namespace) -> int:
    from loraforge.config import load_settings
    from loraforge.training.loading import resolve_model_ref
    from loraforge.training.presets import fit_to_model, resolve_spec

    settings = load_settings()
    spec = resolve_spec(
        args.base_model, {}, **_advance_values(args), seed=args.seed,
        trigger_word=args.trigger_word, instance_prompt=args.instance_prompt, compile=args.compile,
        checkpoint_every=args.checkpoint_every or settings.checkpoint_every,
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
    if args.dry_run:
        print(dataset.report_path)
        return 0
    result = _train(args, spec, dataset, model_ref)
    (args.out / "loss_history.json").write_text(json.dumps(result.loss_history, indent=1))
    if result.samples:
        print(f"samples: {len(result.samples)} images in {args.out / 'samples'}; sampling took "
              f"{result.sample_seconds:.1f} s of {result.loop_seconds:.1f} s training "
              f"({100 * result.sample_share:.1f}%)", file=sys.stderr)
    print(result.lora_path)
    return 0


def _prepare(args: argparse.Namespace, spec: TrainSpec, settings: Settings, model_ref: str) -> PreparedDataset:
    from loraforge.datasets.prepare import prepare_dataset
    from loraforge.training.caption_tokens import token_check

    captioner = None
    if spec.auto_caption:
        from loraforge.training.captioner import captioner_model_ref, load_captioner

        ref = model_ref if spec.family == "qwen" else captioner_model_ref(spec.base_model, settings)
        captioner = load_captioner(ref, args.device)
    try:
        return prepare_dataset(
            args.data, args.out / "dataset", trigger_word=spec.trigger_word,
            instance_prompt=spec.instance_prompt, resolution=spec.resolution, face_crop=spec.face_crop,
            captioner=captioner, **token_check(spec, model_ref),
        )
    finally:
        if captioner is not None:
            captioner.close()


def _train(args: argparse.Namespace, spec: TrainSpec, dataset: PreparedDataset, model_ref: str) -> TrainResult:
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
