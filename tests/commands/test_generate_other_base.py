"""`loraforge generate` with a LoRA trained for another base model says so in one line.

It used to load the whole base pipeline and then print torch's "Error(s) in loading state_dict for
Linear:". Now the file's loraforge metadata, or tensor names only one family has, name the base
model it was trained for, before any model is loaded. Run as a subprocess, as users run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from loraforge.training.tiny import TINY_NAMES
from tests.support.loras import write_random_lora

REPO = Path(__file__).resolve().parents[2]


def generate(tmp_path: Path, base_model: str, lora: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "LORAFORGE_DATA_DIR": str(tmp_path / "d")}
    return subprocess.run(
        [sys.executable, "-m", "loraforge", "generate", "--base-model", base_model, "--lora", str(lora),
         "--prompt", "a photo of sks", "--out", str(tmp_path / "out.png"), "--width", "64", "--height", "64",
         "--steps", "2", *extra],
        check=False, capture_output=True, text=True, env=env, timeout=120,
    )


def test_generate_names_the_base_model_a_lora_was_trained_for(tiny_models: Path, tmp_path: Path) -> None:
    qwen = write_random_lora(tiny_models / TINY_NAMES["qwen"], "qwen", 1, tmp_path / "qwen")
    labelled = tmp_path / "qwen-labelled.safetensors"  # as `loraforge train` writes it
    save_file(load_file(qwen), labelled, metadata={"format": "pt", "loraforge.base_model": "QWEN"})
    result = generate(tmp_path, "FLUX", labelled)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: the LoRA does not match the base model FLUX: this LoRA was trained for QWEN, not FLUX (its "
        "loraforge metadata says so); use it with the QWEN base model, or train one for FLUX")
    assert "loading flux pipeline" not in result.stderr, "refused before loading the base model"

    flux = write_random_lora(tiny_models / TINY_NAMES["flux"], "flux", 1, tmp_path / "flux")  # no metadata
    result = generate(tmp_path, "QWEN", flux)
    assert result.returncode == 2, result.stderr
    assert "this LoRA was trained for FLUX, not QWEN (its tensor names are FLUX's, e.g. " \
        "transformer.single_transformer_blocks." in result.stderr
    same_family = generate(tmp_path, "FAST_FLUX", flux, "--model", str(tiny_models / TINY_NAMES["flux"]))
    assert same_family.returncode == 0, same_family.stderr  # FAST_FLUX runs FLUX's LoRAs
