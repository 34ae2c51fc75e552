"""`loraforge plan [--gpu-gb 80] [--json]`: the GPU memory each stage of a job needs, per base model.

For each base model of the registry (QWEN, FLUX, FAST_FLUX) it builds the full-size pipeline from the published configs on the
meta device (no weights, no memory; a few seconds), or from the configs of the weights that
the family's LORAFORGE_MODEL_QWEN / LORAFORGE_MODEL_FLUX names (a local folder, or a hub id's snapshot in the
Hugging Face cache), counts every component, and prints the peak of each stage at the preset's
resolution, batch and rank: caching latents and text embeddings, training with and without
gradient checkpointing, the deploy check and serving, in bf16, fp8 and nf4. Then which base
models train and serve on 24, 48, 80 and 141 GB cards and with what, and whether serving one model
while training another fits on one card (`--gpu-gb` adds your card). The arithmetic and its
sources are in loraforge.training.memory_plan; a job checks its own figures against its device's
budget before it loads anything (loraforge.worker.preflight).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from loraforge.errors import ValidationError
from loraforge.families.registry import BASE_MODELS, BY_KEY, WEIGHTS


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("plan", help="print the GPU memory each stage needs, per base model")
    parser.add_argument("--gpu-gb", type=float, default=None, help="your card's memory in GB, e.g. 80")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.gpu_gb is not None and not 0 < args.gpu_gb <= 10_000:
        raise ValidationError(f"--gpu-gb: must be a positive number of GB up to 10000 (got {args.gpu_gb})")
    from loraforge.training.memory_plan import CARDS_GB

    cards = sorted({*map(float, CARDS_GB), *([args.gpu_gb] if args.gpu_gb else [])})
    report = build_report(cards)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report, args.gpu_gb))
    return 0


def build_report(cards: list[float]) -> dict[str, Any]:
    """Every figure of the plan as plain data (bytes; GB = 10^9 bytes)."""
    from loraforge.config import load_settings
    from loraforge.training import memory_plan as mp
    from loraforge.training.presets import resolve_spec

    settings = load_settings()
    models: dict[str, Any] = {}
    archs: dict[str, Any] = {}
    for base in BASE_MODELS:
        spec = resolve_spec(base)
        # Unset means the tiny demo model: the plan shows the real model it stands in for.
        family = BY_KEY[spec.family]
        folder = mp.architecture_folder(family.weights_ref(settings))
        arch = archs[base] = mp.measure(spec.family, tuple(spec.target_modules), folder)
        job = mp.JobShape(spec.resolution, spec.batch_size, spec.rank, spec.max_sequence_length)
        weights: tuple[mp.Weights, ...] = ("bf16", "fp8", "nf4")
        models[base] = {
            "family": spec.family,
            "architecture": folder or f"{family.label} (published configs)",
            "preset": {"resolution": job.resolution, "batch_size": job.batch, "rank": job.rank,
                       "text_tokens": job.text_tokens},
            "components": mp.describe_counts(arch),
            "pipeline_bf16_bytes": arch.pipeline_bytes(),
            "lora_params": arch.lora_params * job.rank,
            "stages": {
                "caching": {w: mp.caching_peak(arch, job, mp.Options(w)) for w in weights},
                "training_no_checkpointing": {w: mp.training_peak(arch, job, mp.Options(w)) for w in weights},
                "training_checkpointing": {w: mp.training_peak(arch, job, mp.Options(w, True)) for w in weights},
                "deploy_check": {"bf16": mp.deploy_peak(arch)},
                "serving": {"bf16": mp.serving_peak(arch)},
            },
            "smallest_job_bytes": mp.smallest_job_peak(arch, job),
            "cards": {},
        }
        for card in cards:
            fit = mp.cheapest_fit(arch, job, card * mp.GB)
            models[base]["cards"][_card(card)] = {
                "train": None if fit is None else {"options": fit[0].describe(), "peak_bytes": fit[1]},
                "serve": mp.serving_peak(arch) <= card * mp.GB,
            }
    together = []
    for served in WEIGHTS:  # each family served once: its weights name's preset stands for it
        for trained in BASE_MODELS:
            need = mp.serving_peak(archs[served]) + models[trained]["smallest_job_bytes"]
            together.append({"serving": served, "training": trained, "bytes": need,
                             "fits": {_card(c): need <= c * mp.GB for c in cards}})
    return {"unit": "bytes; GB = 10^9 bytes", "models": models, "serving_while_training": together}


def _card(card: float) -> str:
    return f"{card:g} GB"


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:7.1f} GB"


STAGE_LABELS = {
    "caching": "caching latents + text (VAE + text encoders)",
    "training_no_checkpointing": "training, no gradient checkpointing",
    "training_checkpointing": "training, gradient checkpointing",
    "deploy_check": "deploy check (64 px, 2 steps)",
    "serving": "serving (1024 px)",
}


def render(report: dict[str, Any], gpu_gb: float | None) -> str:
    lines = ["Peak GPU memory per stage (GB = 10^9 bytes). Parameters are counted on the published",
             "architectures built on the meta device; activations are estimates (see",
             "loraforge/training/memory_plan.py for every formula and its source). While latents and",
             "captions are cached the transformer waits in host memory (a quantized one loads onto the",
             "GPU); it comes to the GPU once the text encoders are freed, and the VAE stays for sample sets.", ""]
    for base, model in report["models"].items():
        preset = model["preset"]
        lines.append(f"{base}: {model['architecture']}, preset {preset['resolution']} px, batch "
                     f"{preset['batch_size']}, rank {preset['rank']}, {preset['text_tokens']} text tokens")
        lines.append(f"  {'component':<34}{'parameters':>12}{'bf16':>12}")
        for comp in model["components"]:
            lines.append(f"  {comp['component'] + ' (' + comp['label'] + ')':<34}"
                         f"{comp['params'] / 1e9:>10.2f} B{_gb(comp['bf16_bytes']):>12}")
        lines.append(f"  {'pipeline':<34}{sum(c['params'] for c in model['components']) / 1e9:>10.2f} B"
                     f"{_gb(model['pipeline_bf16_bytes']):>12}")
        lines.append(f"  {'LoRA (fp32 + gradient + AdamW)':<34}{model['lora_params'] / 1e6:>10.1f} M"
                     f"{_gb(model['lora_params'] * 16):>12}")
        lines.append(f"  {'stage':<46}{'bf16':>10}{'fp8':>10}{'nf4':>10}")
        for key, label in STAGE_LABELS.items():
            row = model["stages"][key]
            cells = "".join(f"{_gb(row[w]) if w in row else '':>10}" for w in ("bf16", "fp8", "nf4"))
            lines.append(f"  {label:<46}{cells}")
        for card, fit in model["cards"].items():
            train = (f"trains with {fit['train']['options']} ({_gb(fit['train']['peak_bytes']).strip()})"
                     if fit["train"] else f"does not train (needs at least {_gb(model['smallest_job_bytes']).strip()})")
            serve = "serves in bf16" if fit["serve"] else \
                f"does not serve (needs {_gb(model['stages']['serving']['bf16']).strip()})"
            lines.append(f"  on {card:>6}: {train}; {serve}")
        lines.append("")
    lines.append("Serving one model while training another on the same card (cheapest training options):")
    for pair in report["serving_while_training"]:
        fits = [card for card, ok in pair["fits"].items() if ok]
        verdict = f"fits in {', '.join(fits)}" if fits else "fits on none of these cards"
        lines.append(f"  serving {pair['serving']} while training {pair['training']}: {_gb(pair['bytes']).strip()}; "
                     f"{verdict}")
    if gpu_gb:
        card = _card(gpu_gb)
        lines += ["", f"On your {card} card:"]
        for base, model in report["models"].items():
            fit = model["cards"][card]
            lines.append(f"  {base}: " + (f"trains with {fit['train']['options']}" if fit["train"]
                                          else "does not train") + ("; serves" if fit["serve"] else "; does not serve"))
        for pair in report["serving_while_training"]:
            if not pair["fits"][card]:
                lines.append(f"  serving {pair['serving']} while training {pair['training']} does not fit in {card}: "
                             "the embedded worker releases the inference runner while a job trains")
    return "\n".join(lines)
