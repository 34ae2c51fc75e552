"""`loraforge` as a subprocess, the way a user runs it, and the small image folders it trains on.

`run_cli(*args, env=)` runs `python -m loraforge ARGS` with the repository on PYTHONPATH and the
hub offline; `write_images(folder, count)` writes `count` small PNGs and one caption file;
`generate(pipe, seed)` is one 64x64, two-step image from a tiny pipeline. `cli_in_process(*args)`
calls the same command in this process (`loraforge.cli.main`) and answers what `run_cli` does: for
cases about the data, not the process (a subprocess pays seconds of imports each time).
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


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


def cli_in_process(*args: str) -> subprocess.CompletedProcess:
    """`loraforge ARGS` run by `loraforge.cli.main` here, stdout and stderr captured; the logging
    set-up the command installs is undone afterwards so later tests see the logging they had."""
    from loraforge.cli import main

    loggers = [logging.getLogger(name) for name in ("", "loraforge", "uvicorn", "uvicorn.error", "uvicorn.access",
                                                     "celery")]
    saved = [(logger, logger.level, logger.handlers[:], logger.propagate) for logger in loggers]
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        for logger, level, handlers, propagate in saved:
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.propagate = propagate
    return subprocess.CompletedProcess(["loraforge", *args], code, out.getvalue(), err.getvalue())
