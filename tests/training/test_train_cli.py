"""`loraforge train` end to end on the tiny models: both families, the saved files, bad data.

Each test runs its own `loraforge train` subprocesses (the CLI itself is under test).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from tests.support.cli import generate, run_cli, write_images

FOLDERS = {"QWEN": "qwen-image", "FLUX": "flux-dev"}


@pytest.mark.parametrize("base_model", ["QWEN", "FLUX"])
def test_train_command_writes_a_lora_that_load_lora_weights_reads_and_that_changes_images(
    tiny_models: Path, tmp_path: Path, base_model: str
) -> None:
    from diffusers import DiffusionPipeline

    data = write_images(tmp_path / "data")
    model = tiny_models / FOLDERS[base_model]
    extra = ["--auto-caption"] if base_model == "QWEN" else ["--face-crop"]
    out = run_cli("train", str(data), "--base-model", base_model, "--model", str(model), "--trigger-word", "sks",
                  "--steps", "3", "--learning-rate", "1e-2", "--rank", "4", "--resolution", "64",
                  "--out", str(tmp_path / "out"), *extra, env={"LORAFORGE_DATA_DIR": str(tmp_path / "home")})
    assert out.returncode == 0, out.stderr
    lora = Path(out.stdout.strip().splitlines()[-1])
    assert lora == tmp_path / "out" / "lora.safetensors" and lora.exists()
    assert (tmp_path / "out" / "lora.comfyui.safetensors").exists()
    report = json.loads((tmp_path / "out" / "dataset_report.json").read_text())
    sources = {entry["caption_source"] for entry in report["kept"]}
    assert sources == ({"txt", "captioner"} if base_model == "QWEN" else {"txt", "trigger_word"})
    assert "Traceback" not in out.stderr

    with safe_open(str(lora), "pt") as f:
        meta = f.metadata()
    assert meta["loraforge.base_model"] == base_model and meta["loraforge.trigger_word"] == "sks"
    assert meta["loraforge.steps"] == "3" and meta["loraforge.rank"] == "4"
    assert float(meta["loraforge.learning_rate"]) == 1e-2
    assert meta["loraforge.dataset_sha256"] == report["dataset_sha256"]

    pipe = DiffusionPipeline.from_pretrained(str(model))
    pipe.set_progress_bar_config(disable=True)
    before = generate(pipe)
    pipe.load_lora_weights(str(lora), adapter_name="trained")
    after = generate(pipe)
    assert np.abs(after - before).max() > 1e-4


def _resume_chain(tiny_models: Path, root: Path) -> tuple[subprocess.CompletedProcess, ...]:
    """A 4-step run, `--resume` to 8 steps, then `--resume` to 6: each needs the one before."""
    data = write_images(root / "data", count=2)
    common = ["--base-model", "FLUX", "--model", str(tiny_models / "flux-dev"), "--trigger-word", "sks",
              "--resolution", "64", "--rank", "4", "--learning-rate", "1e-2", "--sample-every", "0"]
    first = run_cli("train", str(data), *common, "--steps", "4", "--out", str(root / "out"))
    if first.returncode != 0:
        return first, first, first
    more = run_cli("train", str(data), *common, "--steps", "8", "--resume", "--out", str(root / "out"))
    shorter = run_cli("train", str(data), *common, "--steps", "6", "--resume", "--out", str(root / "out"))
    return first, more, shorter


def _empty_folder(tiny_models: Path, root: Path) -> subprocess.CompletedProcess:
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("no images here")
    return run_cli("train", str(root / "empty"), "--base-model", "FLUX", "--model",
                   str(tiny_models / "flux-dev"), "--trigger-word", "sks", "--out", str(root / "out"))


def _rank_alias(tiny_models: Path, root: Path) -> subprocess.CompletedProcess:
    data = write_images(root / "data", count=2)
    return run_cli("train", str(data), "--base-model", "FLUX", "--model", str(tiny_models / "flux-dev"),
                   "--trigger-word", "sks", "--steps", "2", "--lora-rank", "4", "--resolution", "64",
                   "--out", str(root / "out"))


def _bad_steps(tiny_models: Path, root: Path) -> subprocess.CompletedProcess:
    return run_cli("train", str(root), "--base-model", "FLUX", "--trigger-word", "sks", "--steps", "0",
                   "--out", str(root / "out"))


def _bad_resolution(tiny_models: Path, root: Path) -> subprocess.CompletedProcess:
    return run_cli("train", str(root), "--base-model", "FLUX", "--trigger-word", "sks", "--resolution", "72",
                   "--out", str(root / "out"))


def test_train_command_on_a_folder_without_images_fails_with_one_clear_line(tiny_models: Path, tmp_path: Path) -> None:
    root = tmp_path
    out = _empty_folder(tiny_models, root)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("error:") and "image" in lines[-1]
    assert "Traceback" not in out.stderr
    assert not (root / "out" / "lora.safetensors").exists()


def test_train_command_with_a_bad_flag_value_names_the_field(tiny_models: Path, tmp_path: Path) -> None:
    out = _bad_steps(tiny_models, tmp_path)
    assert out.returncode != 0 and "steps" in out.stderr and "Traceback" not in out.stderr


def test_train_command_honours_the_lora_rank_alias(tiny_models: Path, tmp_path: Path) -> None:
    root = tmp_path
    out = _rank_alias(tiny_models, root)
    assert out.returncode == 0, out.stderr
    with safe_open(str(root / "out" / "lora.safetensors"), "pt") as f:
        assert f.metadata()["loraforge.rank"] == "4"
        down = next(k for k in f.keys() if "lora_A" in k or "lora_down" in k)  # noqa: SIM118
        assert 4 in f.get_tensor(down).shape


def test_train_command_refuses_a_resolution_that_is_not_a_multiple_of_16(tiny_models: Path, tmp_path: Path) -> None:
    out = _bad_resolution(tiny_models, tmp_path)
    assert out.returncode == 2
    assert "resolution: Input should be a multiple of 16" in out.stderr and "Value error" not in out.stderr


def test_resume_past_a_finished_run_continues_from_its_last_step(tiny_models: Path, tmp_path: Path) -> None:
    root = tmp_path
    first, more, shorter = _resume_chain(tiny_models, root)
    assert first.returncode == 0, first.stderr
    assert more.returncode == 0, more.stderr
    history = json.loads((root / "out" / "loss_history.json").read_text())
    assert [point["step"] for point in history] == [5, 6, 7, 8]  # steps 1-4 are not trained again
    with safe_open(str(root / "out" / "lora.safetensors"), "pt") as f:
        assert f.metadata()["loraforge.steps"] == "8"
    assert shorter.returncode == 2 and "cannot resume at step 8 for a run of 6 steps" in shorter.stderr
