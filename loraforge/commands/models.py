"""`loraforge models tiny DIR`: write the tiny random-weight demo/test pipelines.

DIR/qwen-image and DIR/flux-dev are ordinary diffusers pipeline folders that load with
`from_pretrained(path)`; point LORAFORGE_MODEL_QWEN / LORAFORGE_MODEL_FLUX or `--model` at them.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="manage base models (tiny demo models)")
    sub = parser.add_subparsers(dest="models_command", required=True)
    tiny = sub.add_parser("tiny", help="write tiny random-weight qwen-image/ and flux-dev/ pipelines")
    tiny.add_argument("dir", type=Path, help="output folder")
    tiny.add_argument("--overwrite", action="store_true", help="rebuild folders that already exist")
    tiny.set_defaults(func=run_tiny)


def run_tiny(args: argparse.Namespace) -> int:
    from loraforge.training.tiny import write_tiny_models

    for family, path in write_tiny_models(args.dir, overwrite=args.overwrite).items():
        print(f"{family}\t{path}")
    return 0
