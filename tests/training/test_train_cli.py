"""`loraforge train` end to end on the tiny models: both families, the saved files, bad data.

The subprocesses that no test needs in-process (bad flags, an empty folder, the rank alias, the
resume chain) start together in `cli_runs`, two at a time, and each test reads its own result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

REPO = Path(__file__).resolve().parents[2]
FOLDERS = {"QWEN": "qwen-image", "FLUX": "flux-dev"}


def write_images(folder: Path, count: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 255, size=(72, 64 + 8 * i, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    (folder / "img0.txt").write_text("a red square in the style of sks")
    return folder


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "loraforge", *args], capture_output=True, text=True, check=False,
                          env=full_env, timeout=240)


def generate(pipe, seed: int = 0) -> np.ndarray:
    kwargs = {"true_cfg_scale": 1.0} if "Qwen" in type(pipe).__name__ else {"guidance_scale": 3.5,
                                                                             "max_sequence_length": 32}
    return pipe("sks, a photo", height=64, width=64, num_inference_steps=2, output_type="np",
                generator=torch.manual_seed(seed), **kwargs).images[0]


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


@pytest.fixture(scope="module")
def cli_runs(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, Future]]]:
    """The module's independent `loraforge train` subprocesses, started together two at a time (each
    spends seconds importing on one core); {name: (its folder, its future result)}. The resume chain
    goes first, alone on one worker; the others follow it on the second in the tests' order."""
    runs = {"resume": _resume_chain, "empty": _empty_folder, "bad_steps": _bad_steps,
            "rank_alias": _rank_alias, "bad_resolution": _bad_resolution}
    with ThreadPoolExecutor(max_workers=2) as pool:
        started = {}
        for name, run in runs.items():
            root = tmp_path_factory.mktemp(f"train-cli-{name}")
            started[name] = (root, pool.submit(run, tiny_models, root))
        yield started


def test_train_command_on_a_folder_without_images_fails_with_one_clear_line(
    cli_runs: dict[str, tuple[Path, Future]],
) -> None:
    root, future = cli_runs["empty"]
    out = future.result()
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("error:") and "image" in lines[-1]
    assert "Traceback" not in out.stderr
    assert not (root / "out" / "lora.safetensors").exists()


def test_train_command_with_a_bad_flag_value_names_the_field(cli_runs: dict[str, tuple[Path, Future]]) -> None:
    out = cli_runs["bad_steps"][1].result()
    assert out.returncode != 0 and "steps" in out.stderr and "Traceback" not in out.stderr


def test_train_command_honours_the_lora_rank_alias(cli_runs: dict[str, tuple[Path, Future]]) -> None:
    root, future = cli_runs["rank_alias"]
    out = future.result()
    assert out.returncode == 0, out.stderr
    with safe_open(str(root / "out" / "lora.safetensors"), "pt") as f:
        assert f.metadata()["loraforge.rank"] == "4"
        down = next(k for k in f.keys() if "lora_A" in k or "lora_down" in k)  # noqa: SIM118
        assert 4 in f.get_tensor(down).shape


def test_train_command_refuses_a_resolution_that_is_not_a_multiple_of_16(
    cli_runs: dict[str, tuple[Path, Future]],
) -> None:
    out = cli_runs["bad_resolution"][1].result()
    assert out.returncode == 2
    assert "resolution: Input should be a multiple of 16" in out.stderr and "Value error" not in out.stderr


def test_resume_past_a_finished_run_continues_from_its_last_step(cli_runs: dict[str, tuple[Path, Future]]) -> None:
    root, future = cli_runs["resume"]
    first, more, shorter = future.result()
    assert first.returncode == 0, first.stderr
    assert more.returncode == 0, more.stderr
    history = json.loads((root / "out" / "loss_history.json").read_text())
    assert [point["step"] for point in history] == [5, 6, 7, 8]  # steps 1-4 are not trained again
    with safe_open(str(root / "out" / "lora.safetensors"), "pt") as f:
        assert f.metadata()["loraforge.steps"] == "8"
    assert shorter.returncode == 2 and "cannot resume at step 8 for a run of 6 steps" in shorter.stderr
