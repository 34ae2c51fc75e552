"""`loraforge generate` run as a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from loraforge.training.tiny import TINY_NAMES
from tests.support.loras import LoraWriter

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "LORAFORGE_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "loraforge", "generate", *args],
        check=False, capture_output=True, text=True, env=env, timeout=120,
    )


def test_generate_writes_an_image_of_the_requested_size_with_a_lora(
    tiny_models: Path, lora_writer: LoraWriter, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "cat.jpg"
    result = run_cli(
        "--base-model", "FLUX", "--model", str(tiny_models / TINY_NAMES["flux"]),
        "--lora", str(lora_writer("flux", 1)), "--prompt", "a photo of a cat", "--out", str(out),
        "--width", "96", "--height", "64", "--steps", "2", "--seed", "3", "--lora-strength", "0.8",
        data_dir=tmp_path / "data",
    )
    assert result.returncode == 0, result.stderr
    assert "seed 3" in result.stdout
    with Image.open(out) as image:
        assert (image.format, image.size) == ("JPEG", (96, 64))
    assert [p.name for p in out.parent.iterdir()] == ["cat.jpg"]


def test_generate_refuses_a_bad_size_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "img.png"
    result = run_cli("--base-model", "QWEN", "--prompt", "x", "--out", str(out), "--width", "100",
                     data_dir=tmp_path / "data")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: width: must be a multiple of 16 between 64 and 2048 (got 100)"
    assert not out.exists()
