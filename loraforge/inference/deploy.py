"""The deploy step: prove a trained LoRA works before its job may become AVAILABLE.

The job pipeline calls `deploy(runner, base_model=..., lora_path=..., slug=...)` after training:
the LoRA is loaded into the runner's cache (so the first real request does not pay for it), one
small warm-up image is generated with it at full strength, and that image must be finite and not
black. Any failure raises InferenceError whose message goes into the job's `error_message`, so it
says what is wrong and what to do rather than showing a traceback.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from loraforge.errors import InferenceError
from loraforge.inference.request import GenerationRequest
from loraforge.inference.runner import InferenceRunner

logger = logging.getLogger(__name__)

# Small and short: enough to run every layer the LoRA touches, cheap on a CPU.
WARMUP = {"prompt": "a photo", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 0}
BLACK_LEVEL = 1.0 / 255.0  # below one 8-bit step everywhere: the image is black


def deploy(runner: InferenceRunner, *, base_model: str, lora_path: Path, slug: str,
           model_ref: str | None = None) -> None:
    """Load `lora_path` for `base_model` and check one warm-up image; raise InferenceError if unusable."""
    if not lora_path.is_file():
        raise InferenceError(f"cannot deploy {slug}: the LoRA file {lora_path} does not exist")
    started = time.perf_counter()
    try:
        runner.load_lora(base_model=base_model, lora_path=lora_path, model_ref=model_ref)
        request = GenerationRequest.model_validate(WARMUP)
        pixels = runner.render(request, base_model=base_model, lora_path=lora_path, model_ref=model_ref)
    except InferenceError as exc:
        raise InferenceError(f"cannot deploy {slug}: {exc.message}") from None
    if not np.isfinite(pixels).all():
        raise InferenceError(
            f"cannot deploy {slug}: the warm-up image with this LoRA is NaN; the LoRA weights are "
            "probably diverged: retrain with a lower learning rate or fewer steps"
        )
    if float(pixels.max()) < BLACK_LEVEL:
        raise InferenceError(
            f"cannot deploy {slug}: the warm-up image with this LoRA is entirely black; the LoRA "
            "weights are probably broken: retrain with a lower learning rate or fewer steps"
        )
    logger.info("deployed %s (%s) in %.1fs", slug, base_model, time.perf_counter() - started)
