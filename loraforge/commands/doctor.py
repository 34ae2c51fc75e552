"""`loraforge doctor`: check everything a deployment needs, one line per check, ✓ or ✗ with what to do.

The checks (loraforge.doctor): GPU and CUDA build, weights on disk for each configured base model,
disk space, database reachable and migrated, storage writable, broker reachable, and the public
URL reachable from this machine. Configuration warnings (unknown LORAFORGE_* variables) come
first. Exit code 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse

from loraforge.config import load_settings, start_warnings


def run(args: argparse.Namespace) -> int:
    from loraforge.doctor import run_checks

    settings = load_settings()
    for warning in start_warnings(settings):
        print(f"! {warning}", flush=True)
    checks = run_checks(settings, "doctor")
    for check in checks:
        print(check.line(), flush=True)
    failed = [c for c in checks if not c.ok]
    print(f"\n{len(checks) - len(failed)} of {len(checks)} checks passed")
    return 1 if failed else 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("doctor", help="check GPU, weights, disk, database, storage, broker, URL")
    parser.set_defaults(func=run)
