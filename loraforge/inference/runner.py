"""The inference runner: base pipelines within a device memory budget, and a small LRU of LoRAs.

Shaped like replicate/cog's setup/run: the first request for a base model loads its pipeline
(setup), every request runs it. Each loaded pipeline's size is measured (bytes of parameters and
buffers, see loraforge.inference.memory) and the runner keeps the sum within its budget
(LORAFORGE_GPU_MEMORY_GB, default the whole device): before a pipeline moves onto the device,
the least recently used base pipelines are evicted until it fits, and a later request for an
evicted model loads it again. The N most recently used LoRAs (settings.inference_cache_size) stay
loaded in each pipeline as named diffusers adapters; a request switches to its adapter with
`set_adapters` (its weight is the request's lora_strength, so 0 gives the base model's output)
instead of reloading the base. One lock per runner (one device) makes requests queue rather than
interleave, which keeps the adapter switch and the denoising loop of one request together and
lets loads and evictions never race a request. `release()` drops everything (the device is
handed to training, see loraforge.inference.handoff). Resident and budget bytes are exported as
loraforge_runner_resident_bytes / loraforge_runner_budget_bytes.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from loraforge import metrics
from loraforge.config import Settings
from loraforge.errors import InferenceError, ServiceBusyError
from loraforge.families.registry import BY_KEY, FAMILIES
from loraforge.inference import handoff
from loraforge.inference.adapters import load_adapter
from loraforge.inference.lora_files import file_sha256
from loraforge.inference.memory import device_budget_bytes, gb, pipeline_bytes, resolve_device
from loraforge.inference.queue import BUSY_RETRY_S
from loraforge.inference.request import DEFAULT_STEPS, GenerationRequest, check_limits

logger = logging.getLogger(__name__)

# FLUX.1-dev is guidance-distilled (its guidance is an input of the transformer); Qwen-Image uses
# true classifier-free guidance (each family's `true_cfg` and `default_guidance`).
DEFAULT_GUIDANCE = {f.key: f.default_guidance for f in FAMILIES}


@dataclass
class _Slot:
    """One loaded base pipeline, its resident bytes and the adapters currently loaded into it."""

    family: str
    model_ref: str
    pipe: Any
    nbytes: int = 0
    # LoRA content sha256 -> (adapter name, file it was loaded from), least recently used first.
    adapters: OrderedDict[str, tuple[str, Path]] = field(default_factory=OrderedDict)
    next_adapter: int = 0


class InferenceRunner:
    """Generates images for (base model, optional LoRA, request); safe to share between threads."""

    def __init__(self, settings: Settings, device: str | None = None) -> None:
        self.settings = settings
        self.device = resolve_device(device or settings.inference_device)
        # Training runs on the default device; a runner there hands it over (inference.handoff).
        self.on_training_device = self.device == resolve_device(None)
        self.budget = device_budget_bytes(settings, self.device)
        self.cache_size = settings.inference_cache_size
        self.base_loads = 0  # how many base pipelines were loaded (tests count them)
        self.base_evictions = 0
        self.lora_loads = 0  # how many LoRA files were loaded as adapters
        self.lora_evictions = 0
        self._slots: OrderedDict[str, _Slot] = OrderedDict()  # least recently used first
        self._lock = threading.RLock()
        self._digests: dict[tuple[str, int, int], str] = {}
        metrics.RUNNER_BUDGET_BYTES.labels(self.device).set(self.budget)
        self._publish()

    @property
    def resident_bytes(self) -> int:
        """Bytes of parameters and buffers of every pipeline (LoRAs included) held now."""
        return sum(slot.nbytes for slot in list(self._slots.values()))

    def generate(
        self,
        request: GenerationRequest,
        *,
        base_model: str,
        lora_path: Path | None = None,
        model_ref: str | None = None,
        deadline: float | None = None,
    ) -> Image.Image:
        """One image for `request`; raises InferenceError if the model produced no usable image.

        With `deadline` (time.monotonic) the call first waits while training holds the device and
        raises ServiceBusyError (503) if it still does at the deadline.
        """
        pixels = self.render(request, base_model=base_model, lora_path=lora_path, model_ref=model_ref,
                             deadline=deadline)
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
        deadline: float | None = None,
    ) -> np.ndarray:
        """The raw float image (H, W, 3) in [0, 1], NaNs included: what deploy() inspects."""
        check_limits(request, self.settings, base_model=base_model)
        with self._device(deadline):
            slot = self._slot(base_model, model_ref)
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
        with self._lock:
            self._activate(self._slot(base_model, model_ref), lora_path, 1.0, base_model)

    def loaded_loras(self, base_model: str, model_ref: str | None = None) -> list[Path]:
        """Paths of the LoRAs loaded for a base model, least recently used first."""
        with self._lock:
            slot = self._slot(base_model, model_ref)
            return [path for _, path in slot.adapters.values()]

    def loaded_models(self) -> list[str]:
        """`family:model_ref` of each base pipeline held, least recently used first."""
        with self._lock:
            return list(self._slots)

    def release(self) -> int:
        """Drop every pipeline (waiting for a request in flight); the bytes freed."""
        with self._lock:
            freed = self.resident_bytes
            for key in list(self._slots):
                self._evict(key)
            self._free_cached()
            return freed

    # -- memory ------------------------------------------------------------------------------

    @contextmanager
    def _device(self, deadline: float | None) -> Iterator[None]:
        """Hold the runner lock; with `deadline`, only once training no longer holds the device."""
        while True:
            held = deadline is not None and self.on_training_device
            if held and deadline is not None and not handoff.wait_until_free(deadline):
                raise ServiceBusyError(
                    f"the device {self.device} is busy training a job; retry when the job is done",
                    BUSY_RETRY_S,
                )
            self._lock.acquire()
            # Checked under the lock: gpu_work marks the device busy before it takes this lock.
            if not held or not handoff.busy():
                break
            self._lock.release()
        try:
            yield
        finally:
            self._lock.release()

    def _make_room(self, need: int, keep: str | None, what: str) -> None:
        """Evict least recently used pipelines (never `keep`) until `need` more bytes fit."""
        for key in [k for k in self._slots if k != keep]:
            if self.resident_bytes + need <= self.budget:
                return
            self._evict(key)
        self._free_cached()
        if self.resident_bytes + need > self.budget:
            raise InferenceError(
                f"{what} needs {gb(need)} but the inference budget on {self.device} is {gb(self.budget)} "
                f"({gb(self.resident_bytes)} in use); raise LORAFORGE_GPU_MEMORY_GB or serve on a "
                "larger device (LORAFORGE_INFERENCE_DEVICE)"
            )

    def _evict(self, key: str) -> None:
        slot = self._slots.pop(key)
        slot.pipe = None
        self.base_evictions += 1
        logger.info("evicted %s (%s) from %s", key, gb(slot.nbytes), self.device)
        self._publish()

    def _free_cached(self) -> None:
        gc.collect()  # the pipeline's modules hold reference cycles; free their tensors now
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    def _publish(self) -> None:
        metrics.RUNNER_RESIDENT_BYTES.labels(self.device).set(self.resident_bytes)

    # -- setup -------------------------------------------------------------------------------

    def _slot(self, base_model: str, model_ref: str | None) -> _Slot:
        """The pipeline for `base_model`, loaded within the budget if not held (under the re-entrant lock)."""
        from loraforge.training.loading import dtype_for, family_of, read_pipeline, resolve_model_ref

        family = family_of(base_model)
        ref = resolve_model_ref(base_model, self.settings, model_ref)
        key = f"{family}:{ref}"
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None:
                self._slots.move_to_end(key)
                return slot
            started = time.perf_counter()
            # Read into host memory first, so its size is known before anything moves onto the device.
            pipe = read_pipeline(family, ref, dtype_for(self.device))
            nbytes = pipeline_bytes(pipe)
            self._make_room(nbytes, None, f"the {base_model} pipeline ({ref})")
            pipe.set_progress_bar_config(disable=True)
            slot = self._slots[key] = _Slot(family=family, model_ref=ref, pipe=pipe.to(self.device),
                                            nbytes=nbytes)
            self.base_loads += 1
            self._publish()
            logger.info("loaded %s pipeline %s (%s) on %s in %.1fs", family, ref, gb(nbytes), self.device,
                        time.perf_counter() - started)
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
                self._remeasure(slot)
                logger.info("evicted LoRA %s (adapter %s) from %s", old_path, old_name, slot.model_ref)
            name = f"lora{slot.next_adapter}"
            slot.next_adapter += 1
            load_adapter(pipe, lora_path, name, base_model=base_model)
            slot.adapters[digest] = (name, lora_path.resolve())
            self.lora_loads += 1
            self._remeasure(slot)
        pipe.enable_lora()
        pipe.set_adapters([name], adapter_weights=[strength])

    def _remeasure(self, slot: _Slot) -> None:
        """Count a changed adapter set; evict other pipelines if the LoRAs pushed it over budget."""
        grown = pipeline_bytes(slot.pipe) - slot.nbytes
        key = f"{slot.family}:{slot.model_ref}"
        if grown > 0:
            self._make_room(grown, key, "a LoRA")
        slot.nbytes += grown
        self._publish()

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
        assert seed is not None  # with_seed() draws one when the request has none
        kwargs: dict[str, Any] = {
            "prompt": request.prompt,
            "width": request.width,
            "height": request.height,
            "num_inference_steps": request.num_inference_steps or DEFAULT_STEPS[family],
            # A CPU generator draws the same noise on every device, so a seed means one image.
            "generator": torch.Generator(device="cpu").manual_seed(seed),
        }
        guidance = request.guidance_scale if request.guidance_scale is not None else DEFAULT_GUIDANCE[family]
        if not BY_KEY[family].true_cfg:
            kwargs["guidance_scale"] = guidance
        else:
            kwargs["true_cfg_scale"] = guidance
            # Qwen-Image applies guidance only with a negative prompt; its authors use " ".
            if guidance > 1.0:
                kwargs["negative_prompt"] = request.negative_prompt or " "
        return kwargs
