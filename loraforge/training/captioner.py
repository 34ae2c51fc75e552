"""Auto-captioning with Qwen2.5-VL: the text encoder Qwen-Image already ships is a vision-language
model, so it writes the captions, loaded with `from_pretrained` from the Qwen-Image folder or hub
id (its `text_encoder/`, the tokenizer, and the image processor in `processor/` when present,
else Qwen2.5-VL's standard one). FLUX has no such encoder, so FLUX jobs borrow the configured
Qwen-Image's. On the tiny demo models the captions are gibberish, but the whole path runs.
A captioner is a callable `PIL.Image -> str` as `prepare_dataset` expects; `close()` frees it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import torch
from PIL import Image

from loraforge.config import Settings
from loraforge.errors import TrainingError
from loraforge.training.loading import default_device, resolve_model_ref

logger = logging.getLogger(__name__)

QUESTION = "Describe this image in one short sentence."
MAX_NEW_TOKENS = 40
MAX_PIXELS = 448 * 448  # captions need the gist, not every pixel


def captioner_model_ref(base_model: str, settings: Settings, explicit: str | None = None) -> str:
    """The Qwen-Image weights whose text encoder captions: the training model for QWEN, else QWEN's."""
    from loraforge.training.loading import family_of

    if family_of(base_model) == "qwen":
        return resolve_model_ref(base_model, settings, explicit)
    return resolve_model_ref("QWEN", settings)


class QwenVLCaptioner:
    """Greedy short captions from a Qwen2.5-VL model stored as a Qwen-Image `text_encoder`."""

    def __init__(self, model_ref: str, device: str | None = None) -> None:
        from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

        self.device = device or default_device()
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        try:
            self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                model_ref, subfolder="text_encoder", dtype=dtype, low_cpu_mem_usage=True
            ).to(self.device).eval()  # type: ignore[arg-type]  # transformers' wrapped .to() loses self
            self.tokenizer = AutoTokenizer.from_pretrained(model_ref, subfolder="tokenizer")
        except (OSError, ValueError) as exc:
            raise TrainingError(f"auto_caption could not load Qwen2.5-VL from {model_ref!r}: {exc}") from exc
        try:
            self.processor = Qwen2VLImageProcessorPil.from_pretrained(model_ref, subfolder="processor")
        except OSError:
            self.processor = Qwen2VLImageProcessorPil()  # Qwen2.5-VL's standard settings
        size = dict(self.processor.size)
        size["longest_edge"] = min(size.get("longest_edge") or MAX_PIXELS, MAX_PIXELS)  # in pixels
        self.processor.size = size
        logger.info("auto-caption model loaded from %s on %s", model_ref, self.device)

    def _prompt_ids(self, image_tokens: int) -> torch.Tensor:
        text = (
            "<|im_start|>user\n<|vision_start|>" + "<|image_pad|>" * image_tokens
            + f"<|vision_end|>{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
        )
        ids: torch.Tensor = self.tokenizer(text, return_tensors="pt").input_ids
        return ids

    @torch.no_grad()
    def __call__(self, image: Image.Image) -> str:
        vision = self.processor(images=[image.convert("RGB")], return_tensors="pt")
        grid = vision["image_grid_thw"]
        merge = self.processor.merge_size
        ids = self._prompt_ids(int(grid.prod()) // (merge * merge)).to(self.device)
        out = self.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids),
            pixel_values=vision["pixel_values"].to(self.device, self.model.dtype), image_grid_thw=grid.to(self.device),
            max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
        )
        caption = self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        caption = "".join(ch for ch in caption if ch.isprintable() and ch != "\ufffd")
        return re.sub(r"\s+", " ", caption).strip()[:300]

    def close(self) -> None:
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def load_captioner(model_ref: str, device: str | None = None) -> Any:
    return QwenVLCaptioner(model_ref, device)
