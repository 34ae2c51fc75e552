"""The inference runner: one base pipeline per base model, loaded once, and a small LRU of LoRAs.

Shaped like replicate/cog's setup/run: the first request for a base model loads its pipeline
(setup), every request runs it. The N most recently used LoRAs (settings.inference_cache_size)
stay loaded in that pipeline as named diffusers adapters; a request switches to its adapter with
`set_adapters` (its weight is the request's lora_strength, so 0 gives the base model's output)
instead of reloading the base, and the least recently used adapter is deleted when a new one
needs room. One lock per pipeline makes requests on one device queue rather than interleave,
which also keeps the adapter switch and the denoising loop of one request together.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from loraforge.config import Settings
from loraforge.errors import InferenceError
from loraforge.inference.adapters import load_adapter
from loraforge.inference.lora_files import file_sha256
from loraforge.inference.request import GenerationRequest, check_limits

logger = logging.getLogger(__name__)

# Defaults per family when a request leaves them out: FLUX.1-dev is guidance-distilled (its
# guidance is an input of the transformer); Qwen-Image uses true classifier-free guidance.
DEFAULT_STEPS = {"flux": 28, "qwen": 50}
DEFAULT_GUIDANCE = {"flux": 3.5, "qwen": 4.0}


@dataclass
class _Slot:
    """One loaded base pipeline and the adapters currently loaded into it."""

    family: str
    model_ref: str
    pipe: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    # LoRA content sha256 -> (adapter name, file it was loaded from), least recently used first.
    adapters: OrderedDict[str, tuple[str, Path]] = field(default_factory=OrderedDict)
    next_adapter: int = 0


class InferenceRunner:
    """Generates images for (base model, optional LoRA, request); safe to share between threads."""

    def __init__(self, settings: Settings, device: str | None = None) -> None:
        self.settings = settings
        self.device = device
        self.cache_size = settings.inference_cache_size
        self.base_loads = 0  # how many base pipelines were loaded (tests count them)
        self.lora_loads = 0  # how many LoRA files were loaded as adapters
        self.lora_evictions = 0
        self._slots: dict[str, _Slot] = {}
        self._slots_lock = threading.Lock()
        self._digests: dict[tuple[str, int, int], str] = {}

    def generate(
        self,
        request: GenerationRequest,
        *,
        base_model: str,
        lora_path: Path | None = None,
        model_ref: str | None = None,
    ) -> Image.Image:
        """One image for `request`; raises InferenceError if the model produced no usable image."""
        pixels = self.render(request, base_model=base_model, lora_path=lora_path, model_ref=model_ref)
        if not np.isfinite(pixels).all():
            raise InferenceError(
                f"the {base_model} model produced NaN values for this request; if it used a LoRA, "
                "try a lower lora_strength or retrain the LoRA with a lower learning rate"
            )
        return Image.fromarray((pixels * 255).round().astype(np.uint8))

    def render(
        self,
        request: GenerationRequest,
        *,
        base_model: str,
        lora_path: Path | None = None,
        model_ref: str | None = None,
    ) -> np.ndarray:
        """The raw float image (H, W, 3) in [0, 1], NaNs included: what deploy() inspects."""
        check_limits(request, self.settings)
        slot = self._slot(base_model, model_ref)
        with slot.lock:
            self._activate(slot, lora_path, request.lora_strength, base_model)
            started = time.perf_counter()
            with torch.inference_mode():
                images = slot.pipe(**self._call_kwargs(slot.family, request), output_type="np").images
            logger.info(
                "generated %dx%d, %s steps on %s in %.2fs",
                request.width, request.height, request.num_inference_steps, slot.model_ref,
                time.perf_counter() - started,
            )
        return np.asarray(images[0], dtype=np.float32)

    def load_lora(self, *, base_model: str, lora_path: Path, model_ref: str | None = None) -> None:
        """Load a LoRA into the cache (deploy's first step) without generating."""
        slot = self._slot(base_model, model_ref)
        with slot.lock:
            self._activate(slot, lora_path, 1.0, base_model)

    def loaded_loras(self, base_model: str, model_ref: str | None = None) -> list[Path]:
        """Paths of the LoRAs loaded for a base model, least recently used first."""
        slot = self._slot(base_model, model_ref)
        with slot.lock:
            return [path for _, path in slot.adapters.values()]

    # -- setup -------------------------------------------------------------------------------

    def _slot(self, base_model: str, model_ref: str | None) -> _Slot:
        from loraforge.training.loading import family_of, load_pipeline, resolve_model_ref

        family = family_of(base_model)
        ref = resolve_model_ref(base_model, self.settings, model_ref)
        key = f"{family}:{ref}"
        slot = self._slots.get(key)
        if slot is not None:
            return slot
        # Held while loading so two first requests for one base model load it once.
        with self._slots_lock:
            slot = self._slots.get(key)
            if slot is None:
                started = time.perf_counter()
                pipe = load_pipeline(family, ref, device=self.device)
                pipe.set_progress_bar_config(disable=True)
                slot = self._slots[key] = _Slot(family=family, model_ref=ref, pipe=pipe)
                self.base_loads += 1
                logger.info("loaded %s pipeline %s in %.1fs", family, ref, time.perf_counter() - started)
        return slot

    def _activate(self, slot: _Slot, lora_path: Path | None, strength: float, base_model: str) -> None:
        pipe = slot.pipe
        if lora_path is None:
            if slot.adapters:
                pipe.disable_lora()
            return
        digest = self._digest(lora_path)
        if digest in slot.adapters:
            name = slot.adapters[digest][0]
            slot.adapters.move_to_end(digest)
        else:
            if len(slot.adapters) >= self.cache_size:
                _, (old_name, old_path) = slot.adapters.popitem(last=False)
                pipe.delete_adapters(old_name)
                self.lora_evictions += 1
                logger.info("evicted LoRA %s (adapter %s) from %s", old_path, old_name, slot.model_ref)
            name = f"lora{slot.next_adapter}"
            slot.next_adapter += 1
            load_adapter(pipe, lora_path, name, base_model=base_model)
            slot.adapters[digest] = (name, lora_path.resolve())
            self.lora_loads += 1
        pipe.enable_lora()
        pipe.set_adapters([name], adapter_weights=[strength])

    def _digest(self, path: Path) -> str:
        """A LoRA's cache identity is its content, so the deploy step's copy and the request path's
        copy of one file share an adapter; hashed once per (path, size, mtime)."""
        try:
            stat = path.stat()
        except OSError:
            raise InferenceError(f"the LoRA file {path} does not exist or cannot be read") from None
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        digest = self._digests.get(key)
        if digest is None:
            if len(self._digests) > 10_000:
                self._digests.clear()
            digest = self._digests[key] = file_sha256(path)
        return digest

    # -- run ---------------------------------------------------------------------------------

    @staticmethod
    def _call_kwargs(family: str, request: GenerationRequest) -> dict[str, Any]:
        seed = request.with_seed().seed
        kwargs: dict[str, Any] = {
            "prompt": request.prompt,
            "width": request.width,
            "height": request.height,
            "num_inference_steps": request.num_inference_steps or DEFAULT_STEPS[family],
            # A CPU generator draws the same noise on every device, so a seed means one image.
            "generator": torch.Generator(device="cpu").manual_seed(seed),
        }
        guidance = request.guidance_scale if request.guidance_scale is not None else DEFAULT_GUIDANCE[family]
        if family == "flux":
            kwargs["guidance_scale"] = guidance
        else:
            kwargs["true_cfg_scale"] = guidance
            # Qwen-Image applies guidance only with a negative prompt; its authors use " ".
            if guidance > 1.0:
                kwargs["negative_prompt"] = request.negative_prompt or " "
        return kwargs
