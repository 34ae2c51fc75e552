"""The `loraforge` command line: serve | worker | keys | train | models | generate | doctor | plan.

Each subcommand lives in its own module under `loraforge.commands` with `register(subparsers)`;
this module only wires them together and turns a LoraforgeError into one clear line on stderr and
a non-zero exit code, never a traceback. Heavy imports (torch, diffusers) happen inside the
commands that need them so `loraforge keys create` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from loraforge.errors import LoraforgeError

COMMAND_MODULES = ("serve", "worker", "keys", "train", "models", "generate", "doctor", "plan")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loraforge", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"loraforge.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"loraforge.commands.{name}":
                raise
            continue  # that subcommand is not built yet
        module.register(sub)
    return parser


def _configure_logging() -> None:
    from loraforge.config import load_settings
    from loraforge.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _configure_logging()
        return int(args.func(args) or 0)
    except LoraforgeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
