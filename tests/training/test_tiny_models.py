"""The tiny demo models: written by the CLI, loadable with from_pretrained, able to generate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from loraforge.config import Settings
from loraforge.errors import TrainingError, ValidationError
from loraforge.families.tokenizers import QWEN_TEMPLATE_DROP, qwen_template_prefix_length
from loraforge.training.loading import dtype_for, family_of, read_pipeline, resolve_model_ref

REPO = Path(__file__).resolve().parents[2]


def test_models_tiny_command_writes_both_pipeline_folders(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "loraforge", "models", "tiny", str(tmp_path / "m")], check=False,
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in ("qwen-image", "flux-dev"):
        assert (tmp_path / "m" / name / "model_index.json").exists()
        assert (tmp_path / "m" / name / "transformer" / "config.json").exists()
    assert "qwen" in out.stdout and "flux" in out.stdout


@pytest.mark.parametrize("family", ["qwen", "flux"])
def test_tiny_pipeline_loads_from_its_folder_and_generates_a_64px_image(tiny_models: Path, family: str) -> None:
    from diffusers import DiffusionPipeline

    folder = tiny_models / ("qwen-image" if family == "qwen" else "flux-dev")
    pipe = DiffusionPipeline.from_pretrained(str(folder))  # plain diffusers, no loraforge code
    pipe.set_progress_bar_config(disable=True)
    kwargs = {"true_cfg_scale": 1.0} if family == "qwen" else {"guidance_scale": 3.5, "max_sequence_length": 32}
    image = pipe("a photo of a cat", height=64, width=64, num_inference_steps=2,
                 generator=torch.manual_seed(0), **kwargs).images[0]
    assert image.size == (64, 64)


def test_tiny_qwen_tokenizer_splits_the_prompt_template_prefix_into_34_tokens(tiny_models: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_models / "qwen-image" / "tokenizer"))
    assert qwen_template_prefix_length(tok) == QWEN_TEMPLATE_DROP == 34


def test_base_model_names_map_to_families_and_unknown_names_name_the_field() -> None:
    assert family_of("QWEN") == "qwen"
    assert family_of("FLUX") == "flux" and family_of("fast_flux") == "flux"
    with pytest.raises(ValidationError, match="base_model"):
        family_of("SDXL")


def test_model_ref_prefers_explicit_then_setting_then_tiny_default(tiny_models: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, model_flux="black-forest-labs/FLUX.1-dev")
    assert resolve_model_ref("FLUX", settings, explicit="/x/flux") == "/x/flux"
    assert resolve_model_ref("FAST_FLUX", settings) == "black-forest-labs/FLUX.1-dev"
    tiny = Settings(data_dir=tmp_path, model_qwen=str(tiny_models / "qwen-image"))
    # as the trainer and the inference runner read it: on the CPU in fp32
    pipe = read_pipeline("qwen", resolve_model_ref("QWEN", tiny), dtype_for("cpu"))
    assert pipe.transformer.dtype == torch.float32


def test_loading_a_folder_that_is_not_a_pipeline_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="model_index.json"):
        read_pipeline("flux", str(tmp_path), dtype_for("cpu"))
