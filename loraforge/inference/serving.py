"""One generation for `POST /v1/{slug}` and `POST /v2/{slug}`: look up, check, queue, render.

`generate_for(state, settings, store, slug=..., user_id=..., params=...)` is what both routes
call: it finds the deployed model the key may use (loraforge.usecases.deployed), checks the request's
cost with that model's default steps, holds one of the key's `generations` slots and waits for the
process's generation queue to run `generate_encoded`. That one fetches the model's LoRA into the
local cache (checked against its recorded sha256), generates with it, and encodes the image:
PNG/JPEG bytes, or base64 text when the request asked for it. The rendering runs on the generation
thread, so a slow store download or a long denoising loop never occupies the thread pool other
routes use.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from anyio import to_thread

from loraforge.config import Settings
from loraforge.inference.encoding import encode_base64, encode_image
from loraforge.inference.lora_files import fetch_lora
from loraforge.inference.request import GenerationRequest, check_limits
from loraforge.inference.shared import runner_for
from loraforge.storage.base import ObjectStore
from loraforge.usecases.deployed import DeployedModel, deployed_model


async def generate_for(state: Any, settings: Settings, store: ObjectStore, *, slug: str, user_id: str,
                       params: GenerationRequest) -> bytes | str:
    """The encoded image (bytes, or base64 text with `params.base64`) of `slug`'s model for `user_id`.

    `state` is the API process's state (`app.state`): `read_sessionmaker` and `db_limiter` for the
    lookup, `generation` (loraforge.inference.queue.GenerationQueue), `generation_slots` (the
    key's `generations` quota, loraforge.usecases.quotas) and the runner, made on first use. Raises
    NotFoundError / ConflictError / InferenceError for the model (loraforge.usecases.deployed),
    ValidationError when width x height x steps is over the cap, QuotaExceededError (429) when the
    key has its limit of generations in flight, ServiceBusyError (503, with `retry_after_s`) when
    the queue is full or the device stayed busy, and the runner's InferenceError.
    """
    model = await to_thread.run_sync(_find, state, slug, user_id, limiter=state.db_limiter)
    check_limits(params, settings, base_model=model.base_model)  # the cost, with the model's default steps
    with state.generation_slots.hold(user_id):
        future = state.generation.submit(partial(_render, state, settings, store, model, params))
        return await asyncio.wrap_future(future)


def _find(state: Any, slug: str, user_id: str) -> DeployedModel:
    with state.read_sessionmaker() as session:
        return deployed_model(session, slug, user_id)


def _render(state: Any, settings: Settings, store: ObjectStore, model: DeployedModel, params: GenerationRequest,
            deadline: float) -> bytes | str:
    # The runner (and torch) is made here, on the generation thread, the first time it is needed.
    return generate_encoded(runner_for(state, settings), store, settings, base_model=model.base_model,
                            lora_url=model.cloud_storage_url, sha256=model.sha256, params=params,
                            deadline=deadline)


def generate_encoded(runner: Any, store: ObjectStore, settings: Settings, *, base_model: str, lora_url: str,
                     sha256: str | None, params: GenerationRequest, deadline: float) -> bytes | str:
    """The encoded image for `params` with the LoRA at `lora_url` (bytes, or base64 text)."""
    lora = fetch_lora(store, settings, lora_url, sha256=sha256)
    image = runner.generate(params, base_model=base_model, lora_path=lora, deadline=deadline)
    if params.base64:
        return encode_base64(image, params.image_format)
    return encode_image(image, params.image_format)
