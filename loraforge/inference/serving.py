"""One generation for `POST /v1/{slug}` and `POST /v2/{slug}`: look up, check, queue, render.

`generate_for(generation, run_db, slug=..., user_id=..., params=...)` is what both routes call:
it finds the deployed model the key may use (loraforge.usecases.deployed), checks the request's
cost with that model's default steps, holds one of the key's `generations` slots and waits for the
process's generation queue to run `generate_encoded`. That one fetches the model's LoRA into the
local cache (checked against its recorded sha256), generates with it, and encodes the image:
PNG/JPEG bytes, or base64 text when the request asked for it. The rendering runs on the generation
thread, so a slow store download or a long denoising loop never occupies the thread pool other
routes use.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from typing import Any

from loraforge.config import Settings
from loraforge.inference.encoding import encode_base64, encode_image
from loraforge.inference.lora_files import fetch_lora
from loraforge.inference.queue import GenerationQueue
from loraforge.inference.request import GenerationRequest, check_limits
from loraforge.inference.shared import SharedRunner
from loraforge.storage.base import ObjectStore
from loraforge.usecases.deployed import DeployedModel, deployed_model
from loraforge.usecases.ports import RunDb
from loraforge.usecases.quotas import InFlightSlots


@dataclass(frozen=True)
class Generation:
    """What a process generates with: the key's `generations` slots, the queue and the shared runner."""

    settings: Settings
    store: ObjectStore
    slots: InFlightSlots
    queue: GenerationQueue
    runner: SharedRunner


async def generate_for(generation: Generation, run_db: RunDb, *, slug: str, user_id: str,
                       params: GenerationRequest) -> bytes | str:
    """The encoded image (bytes, or base64 text with `params.base64`) of `slug`'s model for `user_id`.

    The model is looked up through `run_db` (a read-only session on a database thread). Raises
    NotFoundError / ConflictError / InferenceError for the model (loraforge.usecases.deployed),
    ValidationError when width x height x steps is over the cap, QuotaExceededError (429) when the
    key has its limit of generations in flight, ServiceBusyError (503, with `retry_after_s`) when
    the queue is full or the device stayed busy, and the runner's InferenceError.
    """
    model = await run_db(lambda session: deployed_model(session, slug, user_id), readonly=True)
    check_limits(params, generation.settings, base_model=model.base_model)  # with the model's default steps
    with generation.slots.hold(user_id):
        future = generation.queue.submit(partial(_render, generation, model, params))
        return await asyncio.wrap_future(future)


def _render(generation: Generation, model: DeployedModel, params: GenerationRequest, deadline: float) -> bytes | str:
    # The runner (and torch) is made here, on the generation thread, the first time it is needed.
    return generate_encoded(generation.runner.get(), generation.store, generation.settings,
                            base_model=model.base_model, lora_url=model.cloud_storage_url, sha256=model.sha256,
                            params=params, deadline=deadline)


def generate_encoded(runner: Any, store: ObjectStore, settings: Settings, *, base_model: str, lora_url: str,
                     sha256: str | None, params: GenerationRequest, deadline: float) -> bytes | str:
    """The encoded image for `params` with the LoRA at `lora_url` (bytes, or base64 text)."""
    lora = fetch_lora(store, settings, lora_url, sha256=sha256)
    image = runner.generate(params, base_model=base_model, lora_path=lora, deadline=deadline)
    if params.base64:
        return encode_base64(image, params.image_format)
    return encode_image(image, params.image_format)
