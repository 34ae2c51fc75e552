"""Helpers for driving the job pipeline through HTTP: datasets, uploads, submits and waiting."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

TERMINAL = {"AVAILABLE", "FAILED", "CANCELLED"}
HAPPY = ["REQUESTED", "DATA_PROCESSING", "TRAINING_INITIATED", "TRAINING_COMPLETED", "INFERENCE_QUEUED",
         "AVAILABLE"]


def status_path(events: list[dict[str, Any]]) -> list[str]:
    """The statuses a job went through, in order; repeated events of one status count once
    (DATA_PROCESSING also carries the dataset report's counts, a retry notes its attempt)."""
    statuses = [e["status"] for e in events]
    return [s for i, s in enumerate(statuses) if i == 0 or s != statuses[i - 1]]


def image_zip(count: int = 4, size: int = 64, seed: int = 0) -> bytes:
    """A ZIP of `count` small, distinct RGB PNGs with one caption file."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(count):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            png = io.BytesIO()
            Image.fromarray(pixels).save(png, format="PNG")
            zf.writestr(f"photos/img{i}.png", png.getvalue())
        zf.writestr("photos/img0.txt", "a photo of TOK on a table")
    return buf.getvalue()


def not_images_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("notes.txt", "no pictures here")
        zf.writestr("broken.png", b"\x89PNG not really")
    return buf.getvalue()


def pipeline_settings(tiny_models: Path, **overrides: Any) -> dict[str, Any]:
    """Settings for quick pipeline tests: the session's tiny models, loopback allowed, fast retries."""
    values: dict[str, Any] = {
        "model_flux": str(tiny_models / "flux-dev"),
        "model_qwen": str(tiny_models / "qwen-image"),
        "embedded_worker": True,
        "allow_private_urls": True,
        "lease_seconds": 10,
        "checkpoint_every": 2,
        "progress_interval_s": 0.0,
        "webhook_retry_schedule": "0,0.05,0.05,0.1",
        "webhook_poll_s": 0.1,
    }
    values.update(overrides)
    return values


def submit_body(data_source_path: str, base_model: str = "FLUX", steps: int = 4, **extra: Any) -> dict[str, Any]:
    return {
        "name": "e2e", "data_source_path": data_source_path, "instance_prompt": "a photo of TOK",
        "trigger_word": "TOK", "base_model": base_model, "theme": base_model, "machine_type": "NVIDIA_H100",
        "train_type": "LORA", "segmind_public": False,
        "advance_parameters": {"steps": steps, "learning_rate": 0.0004, "resolution": 64, "rank": 4, **extra},
    }


def wait_for(fetch: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool],
             timeout: float = 120.0, what: str = "job") -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = fetch()
        if done(last):
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what} did not get there in {timeout:.0f}s; last seen: {last}")
