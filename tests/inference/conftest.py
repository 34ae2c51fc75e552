"""Fixtures for the inference tests: random LoRAs (tests/support/loras.py) and tiny-model settings.

Training one would work too but costs seconds per file; these tests need LoRAs that change the
image noticeably and differ from each other, which random LoRA factors give in milliseconds. The
files are written by the pipeline's own `save_lora_weights`, the format training exports.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loraforge.config import Settings, load_settings
from tests.support.loras import LoraWriter, write_random_lora


@pytest.fixture(scope="session")
def lora_writer(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> LoraWriter:
    """write(family, seed) -> path of a random LoRA for that tiny model; cached per (family, seed)."""
    from loraforge.training.tiny import TINY_NAMES

    cache: dict[tuple[str, int], Path] = {}

    def write(family: str, seed: int) -> Path:
        if (family, seed) not in cache:
            dest = tmp_path_factory.mktemp(f"lora-{family}-{seed}")
            cache[(family, seed)] = write_random_lora(tiny_models / TINY_NAMES[family], family, seed, dest)
        return cache[(family, seed)]

    return write


@pytest.fixture
def inference_settings(tiny_models: Path, tmp_path: Path) -> Settings:
    """Settings whose FLUX and QWEN base models are the tiny ones."""
    from loraforge.training.tiny import TINY_NAMES

    return load_settings(
        data_dir=tmp_path / "data",
        model_flux=str(tiny_models / TINY_NAMES["flux"]),
        model_qwen=str(tiny_models / TINY_NAMES["qwen"]),
    )
