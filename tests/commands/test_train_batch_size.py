"""`loraforge train` warns when batch_size is larger than the usable images, as the job's report does.

A batch is drawn from one bucket with replacement, so training runs, but each step sees the same
photos several times: the dataset report (and so a job's details and DATA_PROCESSING event, and
the CLI's `warning:` lines) says so. The `train --dry-run` command is called in-process
(tests/support/cli.py): what is under test is the report, not the process.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from loraforge.training.tiny import TINY_NAMES
from tests.support.cli import cli_in_process
from tests.support.flow import image_zip


def dry_run(tmp_path: Path, tiny_models: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    data = tmp_path / "photos.zip"
    data.write_bytes(image_zip(count=3))
    return cli_in_process("train", str(data), "--base-model", "FLUX", "--trigger-word", "sks",
                          "--model", str(tiny_models / TINY_NAMES["flux"]), "--resolution", "64",
                          "--out", str(tmp_path / "out"), "--dry-run", *flags)


def test_a_batch_larger_than_the_usable_images_is_warned_in_the_report(tiny_models: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAFORGE_DATA_DIR", str(tmp_path / "d"))
    result = dry_run(tmp_path, tiny_models, "--train-batch-size", "5")
    assert result.returncode == 0, result.stderr
    expected = ("batch_size 5 is more than the 3 usable images: every step repeats images within its batch; "
                "set batch_size (train_batch_size) to 3 or less, or add images")
    assert f"warning: {expected}" in result.stderr.splitlines()
    report = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
    assert expected in report["warnings"]

    fits = dry_run(tmp_path, tiny_models, "--batch-size", "3")
    assert fits.returncode == 0 and "batch_size" not in fits.stderr, fits.stderr
