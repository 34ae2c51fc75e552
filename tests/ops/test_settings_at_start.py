"""What `serve` and `worker` say about their settings at start, run as the user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.serving import serve_env, serve_until_ready, stop


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_broker_with_the_default_sqlite_database_refuses_to_start(tmp_path: Path, command: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loraforge", command],
        env=serve_env(tmp_path, LORAFORGE_BROKER_URL="redis://127.0.0.1:6379/15"),
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "LORAFORGE_BROKER_URL" in done.stderr and "LORAFORGE_DATABASE_URL" in done.stderr
    assert "Traceback" not in done.stderr
    assert "LORAFORGE_SETTINGS" not in done.stderr and "Value error" not in done.stderr, done.stderr  # no such variable


def test_typos_and_unreachable_links_are_warned_about_in_json_logs(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    process = serve_until_ready(tmp_path, log, "--host", "0.0.0.0", LORAFORGE_MODELS_FLUX="/x",
                                 LORAFORGE_LOG_FORMAT="json")
    stop(process)
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert records, "serve logs something at start"
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records), records
    warnings = [r["message"] for r in records if r["level"] == "WARNING"]
    assert any("LORAFORGE_MODELS_FLUX" in w and "did you mean LORAFORGE_MODEL_FLUX" in w for w in warnings)
    assert any("LORAFORGE_PUBLIC_URL" in w and "http://127.0.0.1:" in w for w in warnings), warnings
    assert any(r["logger"].startswith("loraforge") and r["level"] == "INFO" for r in records)


def test_log_level_governs_loraforge_loggers(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    stop(serve_until_ready(tmp_path, log, LORAFORGE_LOG_LEVEL="warning", LORAFORGE_LOGLEVEL="x"))
    text = log.read_text()
    assert "LORAFORGE_LOGLEVEL" in text and "did you mean LORAFORGE_LOG_LEVEL" in text
    assert " INFO loraforge" not in text, "INFO lines of loraforge are hidden at LORAFORGE_LOG_LEVEL=warning"
    stop(serve_until_ready(tmp_path, log, LORAFORGE_LOG_LEVEL="DEBUG"))
    assert " INFO loraforge" in log.read_text(), "and shown at DEBUG"


BASE_WEIGHTS = {"nf4": (["--base-weights", "nf4"], {}), "fp8": ([], {"LORAFORGE_BASE_WEIGHTS": "FP8"})}


@pytest.fixture(scope="module")
def base_weight_runs(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """`loraforge train` once with the flag and once with the variable, started together (each is
    seconds of single-threaded imports before it refuses, so the two share the machine's cores)."""
    from tests.support.cli import write_images

    runs = {}
    for asked, (flag, env) in BASE_WEIGHTS.items():
        tmp_path = tmp_path_factory.mktemp(f"weights-{asked}")
        data = write_images(tmp_path / "data", count=2)
        runs[asked] = subprocess.Popen(
            [sys.executable, "-m", "loraforge", "train", str(data), "--base-model", "FLUX", "--model",
             str(tiny_models / "flux-dev"), "--trigger-word", "sks", "--steps", "1", "--resolution", "64",
             "--device", "cpu", "--out", str(tmp_path / "out"), *flag],
            env=serve_env(tmp_path, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield runs
    for process in runs.values():
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("asked", list(BASE_WEIGHTS))
def test_base_weights_reach_training_from_the_flag_and_the_variable(base_weight_runs: dict, asked: str) -> None:
    _out, err = base_weight_runs[asked].communicate(timeout=240)
    # On this CPU-only machine the quantized loaders refuse; the message proves the choice arrived.
    assert base_weight_runs[asked].returncode == 2, err
    assert f"base_weights={asked} needs a CUDA GPU" in err
