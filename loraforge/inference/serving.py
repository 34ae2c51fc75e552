"""One generation for `POST /v1/{slug}`, as the generation queue's worker runs it.

`generate_encoded(runner, store, settings, ...)` fetches the model's LoRA into the local cache
(checked against its recorded sha256), generates with it, and encodes the image: PNG/JPEG bytes,
or base64 text when the request asked for it. All of it runs on the generation thread, so a slow
store download or a long denoising loop never occupies the thread pool other routes use.
"""

from __future__ import annotations

from typing import Any

from loraforge.config import Settings
from loraforge.inference.encoding import encode_base64, encode_image
from loraforge.inference.lora_files import fetch_lora
from loraforge.inference.request import GenerationRequest
from loraforge.storage.base import ObjectStore


def generate_encoded(runner: Any, store: ObjectStore, settings: Settings, *, base_model: str, lora_url: str,
                     sha256: str | None, params: GenerationRequest, deadline: float) -> bytes | str:
    """The encoded image for `params` with the LoRA at `lora_url` (bytes, or base64 text)."""
    lora = fetch_lora(store, settings, lora_url, sha256=sha256)
    image = runner.generate(params, base_model=base_model, lora_path=lora, deadline=deadline)
    if params.base64:
        return encode_base64(image, params.image_format)
    return encode_image(image, params.image_format)
