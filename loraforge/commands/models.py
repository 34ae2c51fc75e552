"""`loraforge models tiny DIR | pull [QWEN|FLUX]`: demo pipelines, and real weights ahead of time.

`tiny`: DIR/qwen-image and DIR/flux-dev are ordinary diffusers pipeline folders that load with
`from_pretrained(path)`; point LORAFORGE_MODEL_QWEN / LORAFORGE_MODEL_FLUX or `--model` at them.
`pull`: download the configured weights (LORAFORGE_MODEL_*, else the real hub ids) into the
Hugging Face cache with progress bars, and check they are complete (loraforge.weights), so the
first job does not spend an hour downloading or fail on a missing token.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from loraforge.families.registry import BASE_MODELS, BY_KEY, WEIGHTS


def _weights_name(value: str) -> str:
    """A base model named on the command line, in any case, as its family's weights name (FAST_FLUX: FLUX)."""
    name = value.strip().upper()
    if name not in BASE_MODELS:
        raise argparse.ArgumentTypeError(f"must be {' or '.join(WEIGHTS)} ({_shared_weights()}), got {value!r}")
    return BY_KEY[BASE_MODELS[name]].weights_name


def _shared_weights() -> str:
    """"FAST_FLUX uses FLUX's weights": the base models that pull another's weights."""
    return "; ".join(f"{b} uses {f.weights_name}'s weights" for f in WEIGHTS.values()
                     for b in f.base_models if b != f.weights_name)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("models", help="manage base models (tiny demo models)")
    sub = parser.add_subparsers(dest="models_command", required=True)
    tiny = sub.add_parser("tiny", help="write tiny random-weight qwen-image/ and flux-dev/ pipelines")
    tiny.add_argument("dir", type=Path, help="output folder")
    tiny.add_argument("--overwrite", action="store_true", help="rebuild folders that already exist")
    tiny.set_defaults(func=run_tiny)
    pull = sub.add_parser("pull", help="download and verify the configured base weights (default: both)")
    pull.add_argument("names", nargs="*", type=_weights_name, metavar="|".join(WEIGHTS),
                      help=f"which base models ({_shared_weights()})")
    pull.set_defaults(func=run_pull)


def run_pull(args: argparse.Namespace) -> int:
    import sys

    from loraforge.config import load_settings
    from loraforge.weights import configured, pull, real_model_id

    settings = load_settings()
    refs = configured(settings)
    for name in args.names or list(WEIGHTS):
        ref = refs[name] or real_model_id(name)
        print(f"{name}: {ref}", file=sys.stderr, flush=True)
        folder = pull(ref)
        print(f"{name}\t{folder}")
        if not refs[name]:
            print(f"  set LORAFORGE_MODEL_{name}={ref} so jobs use it (unset, they use the tiny demo model)",
                  file=sys.stderr)
    return 0


def run_tiny(args: argparse.Namespace) -> int:
    from loraforge.training.tiny import write_tiny_models

    for family, path in write_tiny_models(args.dir, overwrite=args.overwrite).items():
        print(f"{family}\t{path}")
    return 0
