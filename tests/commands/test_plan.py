"""`loraforge plan` as a subprocess: full-size architectures counted on the meta device."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def start_plan(*args: str, **env_vars: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **env_vars}
    return subprocess.Popen([sys.executable, "-m", "loraforge", "plan", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        out, err = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def plan(*args: str, **env_vars: str) -> subprocess.CompletedProcess[str]:
    return finish(start_plan(*args, **env_vars))


@pytest.fixture(scope="module")
def full_plans(tiny_models: Path) -> Iterator[dict[str, subprocess.Popen[str]]]:
    """The module's two full `plan` runs (seconds of single-threaded CPU each, building the
    architectures on the meta device), started together so that they run on two cores at once."""
    runs = {"published": start_plan("--gpu-gb", "80"),
            "local qwen": start_plan("--json", LORAFORGE_MODEL_QWEN=str(tiny_models / "qwen-image"))}
    yield runs
    for process in runs.values():
        if process.poll() is None:
            process.kill()
            process.wait()


def transformer_params(output: str, base_model: str) -> float:
    section = output.split(f"\n{base_model}: ", 1)[1]
    return float(re.search(r"transformer \(MMDiT\)\s+([\d.]+) B", section).group(1))


def test_plan_counts_the_published_transformers_and_says_qwen_cannot_serve_and_train_on_80_gb(full_plans) -> None:
    result = finish(full_plans["published"])
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert abs(transformer_params(out, "FLUX") - 11.9) <= 11.9 * 0.02
    assert abs(transformer_params(out, "QWEN") - 20.4) <= 20.4 * 0.02
    assert "serving QWEN while training QWEN does not fit in 80 GB" in out
    assert "serving FLUX while training FLUX does not fit" not in out  # the verdict depends on the figures
    for stage in ("caching latents + text", "training, gradient checkpointing", "deploy check", "serving (1024 px)"):
        assert stage in out
    for card in ("24 GB", "48 GB", "80 GB", "141 GB"):
        assert f"on {card:>6}:" in out
    qwen_24 = re.search(r"QWEN: .*?on  24 GB: ([^\n]+)", out, re.DOTALL).group(1)
    assert qwen_24.startswith("does not train") and "does not serve" in qwen_24
    # The trainer caches with the transformer in host memory: in bf16 that stage needs less than the
    # transformer's own 40.9 GB, and Qwen-Image trains unquantized on 48 GB.
    qwen_caching = re.search(r"QWEN: .*?caching latents \+ text[^\d]+([\d.]+) GB", out, re.DOTALL).group(1)
    assert float(qwen_caching) < 40.9
    assert re.search(r"QWEN: .*?on  48 GB: trains with bf16, gradient checkpointing", out, re.DOTALL)
    assert "offload" not in out  # no advice the trainer does not follow


def test_a_bad_card_size_is_refused_naming_the_flag() -> None:
    result = plan("--gpu-gb", "-3")
    assert result.returncode == 2 and "--gpu-gb" in result.stderr


def test_a_configured_local_model_is_counted_from_its_own_configs(tiny_models: Path, full_plans) -> None:
    from diffusers import QwenImagePipeline

    folder = tiny_models / "qwen-image"
    result = finish(full_plans["local qwen"])  # LORAFORGE_MODEL_QWEN=folder
    assert result.returncode == 0, result.stderr[-2000:]
    qwen = json.loads(result.stdout)["models"]["QWEN"]
    assert qwen["architecture"] == str(folder.resolve())
    pipe = QwenImagePipeline.from_pretrained(str(folder))  # the weights, which the plan never reads
    counted = {c["component"]: c["params"] for c in qwen["components"]}
    assert counted == {name: sum(p.numel() for p in getattr(pipe, name).parameters())
                       for name in ("transformer", "text_encoder", "vae")}
    flux = json.loads(result.stdout)["models"]["FLUX"]  # not configured: the published FLUX.1-dev
    assert flux["architecture"] == "FLUX.1-dev (published configs)"
