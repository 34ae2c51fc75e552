"""`loraforge doctor`, `loraforge models pull` and the start checks, offline (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.databases import create_postgres_database, drop_postgres_database

REPO = Path(__file__).resolve().parents[2]
HUB_ID = "black-forest-labs/FLUX.1-dev"  # never fetched: the hub is switched off for every run


def _run(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LORAFORGE_", "HF_"))}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"),
               LORAFORGE_DATA_DIR=str(tmp_path / "data"), **extra)
    return subprocess.run([sys.executable, "-m", "loraforge", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_doctor_with_missing_weights_says_how_to_get_them(tmp_path: Path) -> None:
    done = _run(tmp_path, "doctor", LORAFORGE_MODEL_FLUX=HUB_ID, LORAFORGE_PORT="9")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    flux = next(i for i, line in enumerate(lines) if line.startswith("✗ FLUX weights"))
    assert HUB_ID in lines[flux] and "loraforge models pull FLUX" in lines[flux + 1]
    assert "HF_TOKEN" in lines[flux + 1]
    assert any(line.startswith("✓ QWEN weights: tiny demo model") for line in lines)
    assert any(line.startswith("✓ storage") for line in lines)
    assert any(line.startswith("✗ public URL") for line in lines), "nothing listens on the public URL"
    assert "Traceback" not in done.stderr


def test_models_pull_offline_fails_clearly(tmp_path: Path) -> None:
    done = _run(tmp_path, "models", "pull", "FLUX", LORAFORGE_MODEL_FLUX=HUB_ID)
    assert done.returncode == 2 and done.stdout == ""
    assert HUB_ID in done.stderr and "HF_HUB_OFFLINE" in done.stderr and "HF_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr


def test_models_pull_verifies_a_local_folder(tmp_path: Path, tiny_models: Path) -> None:
    done = _run(tmp_path, "models", "pull", "QWEN", LORAFORGE_MODEL_QWEN=str(tiny_models / "qwen-image"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"QWEN\t{tiny_models / 'qwen-image'}"
    fast = _run(tmp_path, "models", "pull", "fast_flux", LORAFORGE_MODEL_FLUX=str(tiny_models / "flux-dev"))
    assert fast.returncode == 0 and fast.stdout.strip() == f"FLUX\t{tiny_models / 'flux-dev'}", fast.stderr
    wrong = _run(tmp_path, "models", "pull", "SDXL")
    assert wrong.returncode == 2 and "must be QWEN or FLUX" in wrong.stderr and "[]" not in wrong.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text('{"_class_name": "FluxPipeline", "vae": ["diffusers", "AutoencoderKL"]}')
    done = _run(tmp_path, "models", "pull", "FLUX", LORAFORGE_MODEL_FLUX=str(broken))
    assert done.returncode == 2 and "component vae/ is missing" in done.stderr


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_refuse_to_start_without_the_weights_they_train(tmp_path: Path, command: str) -> None:
    extra = {"LORAFORGE_MODEL_FLUX": HUB_ID}
    database = create_postgres_database() if command == "worker" else ""
    if command == "worker":
        extra |= {"LORAFORGE_BROKER_URL": "redis://127.0.0.1:6379/15", "LORAFORGE_DATABASE_URL": database}
    try:
        done = _run(tmp_path, command, **extra)
    finally:
        if database:
            drop_postgres_database(database)
    assert done.returncode == 2, done.stderr
    assert f"loraforge {command} cannot start" in done.stderr and "loraforge models pull FLUX" in done.stderr
    assert "HF_TOKEN" in done.stderr and "Traceback" not in done.stderr


def test_an_api_only_node_starts_without_weights(tmp_path: Path) -> None:
    """Weights matter only where training happens: an API-only serve starts without them."""
    from tests.support.serving import serve_until_ready, stop

    log = tmp_path / "serve.log"
    stop(serve_until_ready(tmp_path, log, LORAFORGE_MODEL_FLUX=HUB_ID, HF_HOME=str(tmp_path / "hf")))
    text = log.read_text()
    assert "✓ storage" in text and "✓ database" in text, "the start checks ran"
    assert "FLUX weights" not in text, "an API-only node does not check the weights it never loads"
