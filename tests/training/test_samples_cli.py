"""`loraforge train` sample sets, intermediate LoRAs and loss history, through the CLI on tiny FLUX."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.support.cli import generate, run_cli, write_images

PROMPTS = ("sks", "a photo of sks on a beach")


def train_with_samples(tiny_models: Path, data: Path, out: Path) -> str:
    result = run_cli("train", str(data), "--base-model", "FLUX", "--model", str(tiny_models / "flux-dev"),
                     "--trigger-word", "sks", "--steps", "4", "--sample-every", "2", "--learning-rate", "1e-2",
                     "--rank", "4", "--resolution", "64", "--seed", "3", "--out", str(out),
                     *[arg for p in PROMPTS for arg in ("--sample-prompt", p)])
    assert result.returncode == 0, result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def runs(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("samples-cli")
    data = write_images(root / "data")
    # The two runs are independent subprocesses: run them side by side, one per core.
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(train_with_samples, tiny_models, data, root / "a")
        second = pool.submit(train_with_samples, tiny_models, data, root / "b")
        stderr = first.result()
        second.result()
    return root / "a", root / "b", stderr


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


def test_sample_sets_are_training_resolution_pngs_at_the_asked_steps(runs: tuple[Path, Path, str]) -> None:
    out, _, stderr = runs
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step-2", "step-4"]
    for step in (2, 4):
        files = sorted((out / "samples" / f"step-{step}").iterdir())
        assert [f.name for f in files] == ["0.png", "1.png"]
        for f in files:
            with Image.open(f) as img:
                assert img.format == "PNG" and img.size == (64, 64)
            assert pixels(f).std() > 0
    assert np.abs(pixels(out / "samples/step-2/0.png") - pixels(out / "samples/step-4/0.png")).max() > 0
    assert "sampling took" in stderr and "%" in stderr


def test_the_same_seed_gives_the_same_samples(runs: tuple[Path, Path, str]) -> None:
    a, b, _ = runs
    for rel in ("step-2/0.png", "step-2/1.png", "step-4/0.png", "step-4/1.png"):
        assert np.array_equal(pixels(a / "samples" / rel), pixels(b / "samples" / rel)), rel


def test_intermediate_lora_loads_and_differs_from_the_final(tiny_models: Path, runs: tuple[Path, Path, str]) -> None:
    from diffusers import FluxPipeline

    out, _, _ = runs
    assert sorted(p.name for p in out.glob("lora-step-*.safetensors")) == ["lora-step-2.safetensors"]
    middle, final = load_file(str(out / "lora-step-2.safetensors")), load_file(str(out / "lora.safetensors"))
    assert middle.keys() == final.keys()
    assert any(not torch.equal(middle[k], final[k]) for k in final)
    pipe = FluxPipeline.from_pretrained(str(tiny_models / "flux-dev"))
    pipe.set_progress_bar_config(disable=True)
    base = generate(pipe)
    pipe.load_lora_weights(str(out / "lora-step-2.safetensors"), adapter_name="step2")
    assert np.abs(generate(pipe) - base).max() > 1e-4


def test_loss_history_has_every_step_with_lr_and_step_time(runs: tuple[Path, Path, str]) -> None:
    history = json.loads((runs[0] / "loss_history.json").read_text())
    assert [p["step"] for p in history] == [1, 2, 3, 4]
    assert all(p["lr"] == 1e-2 and p["step_seconds"] > 0 and np.isfinite(p["loss"]) for p in history)
