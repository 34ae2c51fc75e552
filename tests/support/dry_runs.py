"""`loraforge train --dry-run` cases run in-process: a dataset builder, its flags, and what came out.

Shared by the caption and dataset-convention tests: what is under test is how the data is read,
not the process, so each dry run calls the CLI in-process (tests/support/cli.py) and `DryRuns`
makes a case's run when a test first asks for it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.cli import cli_in_process


@dataclass(frozen=True)
class Case:
    """A dataset (`build(folder)` writes it under an empty folder and returns the path to train on)
    and the flags of its dry run."""

    build: Callable[[Path], Path]
    trigger: str = "TOK"
    base_model: str = "FLUX"
    model: str = "flux-dev"


@dataclass
class DryRun:
    data: Path
    result: subprocess.CompletedProcess
    report: dict
    warnings: list[str]  # the `warning:` lines of stderr


def run_dry(tiny_models: Path, root: Path, spec: Case) -> DryRun:
    root.mkdir()
    data = spec.build(root)
    result = cli_in_process("train", str(data), "--base-model", spec.base_model,
                            "--model", str(tiny_models / spec.model), "--trigger-word", spec.trigger,
                            "--resolution", "64", "--out", str(root / "out"), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    return DryRun(data, result, report, warnings)


class DryRuns:
    """Each case's dry run, made when first asked for, under its own folder."""

    def __init__(self, tiny_models: Path, base: Path, cases: dict[str, Case]) -> None:
        self.tiny_models, self.base, self.cases = tiny_models, base, cases
        self.done: dict[str, DryRun] = {}

    def __getitem__(self, name: str) -> DryRun:
        if name not in self.done:
            self.done[name] = run_dry(self.tiny_models, self.base / name, self.cases[name])
        return self.done[name]


def captions(report: dict) -> dict[str, tuple[str, str]]:
    return {k["source"]: (k["caption"], k["caption_source"]) for k in report["kept"]}
