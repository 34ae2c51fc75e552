"""`POST /v1/{slug}`: generate an image with a deployed fine-tuned model.

The slug is the job's `slug`; who may call it is decided by loraforge.jobs.deployed (a private
model answers only its owner's key, a public one any valid key; an unknown slug is 404 and a model
not yet AVAILABLE is 409 naming its status). The body is JSON (see loraforge.inference.request),
refused with 400 naming the fields when width x height x steps is over
LORAFORGE_INFERENCE_MAX_PIXEL_STEPS. The answer is the image bytes with their media type, or
`{"image": "<base64>"}` with `base64: true`, and the seed used in `X-Seed`. The generation itself
runs on the app's own generation queue (loraforge.inference.queue), never in the shared thread
pool: when LORAFORGE_INFERENCE_QUEUE_SIZE requests already wait, or one waited
LORAFORGE_INFERENCE_WAIT_S for a device held by training, the answer is 503 with `Retry-After`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from loraforge.api.bodies import parse_json, read_capped
from loraforge.api.deps import CurrentUser, SettingsDep, StoreDep
from loraforge.api.responses import JsonResponse
from loraforge.errors import ServiceBusyError, ValidationError
from loraforge.inference.encoding import MEDIA_TYPES
from loraforge.inference.queue import GenerationQueue
from loraforge.inference.request import check_limits, parse_request
from loraforge.inference.shared import runner_for
from loraforge.jobs.deployed import DeployedModel, deployed_model
from loraforge.storage.base import ObjectStore

logger = logging.getLogger(__name__)

router = APIRouter(tags=["generation"])


def app_runner(app: FastAPI) -> Any:
    """The app's InferenceRunner, made on first use (released while a job of this process trains)."""
    return runner_for(app.state, app.state.settings)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The app's generation queue, closed (waiting requests answered 503) at shutdown."""
    settings = app.state.settings
    app.state.generation = GenerationQueue(settings.inference_queue_size, settings.inference_wait_s)
    try:
        yield
    finally:
        await to_thread.run_sync(app.state.generation.close)


async def _find(app: FastAPI, slug: str, user_id: str) -> DeployedModel:
    def work() -> DeployedModel:
        with app.state.read_sessionmaker() as session:
            return deployed_model(session, slug, user_id)

    return await to_thread.run_sync(work, limiter=app.state.db_limiter)


def _render(app: FastAPI, store: ObjectStore, model: DeployedModel, params: Any, deadline: float) -> bytes | str:
    from loraforge.inference.serving import generate_encoded

    return generate_encoded(app_runner(app), store, app.state.settings,
                            base_model=model.base_model, lora_url=model.cloud_storage_url,
                            sha256=model.sha256, params=params, deadline=deadline)


@router.post(
    "/v1/{slug}",
    summary="Generate an image with a fine-tuned model",
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "application/json": {}}},
               503: {"description": "the generation queue is full; retry after `Retry-After` seconds"}},
)
async def generate(slug: str, request: Request, caller: CurrentUser, settings: SettingsDep,
                   store: StoreDep) -> Response:
    body = _json(await read_capped(request, settings.max_request_bytes), request.headers.get("content-type", ""))
    params = parse_request(body, settings).with_seed()
    model = await _find(request.app, slug, caller.user_id)
    check_limits(params, settings, base_model=model.base_model)  # the cost, with the model's default steps
    try:
        with request.app.state.generation_slots.hold(caller.user_id):  # the key's `generations` quota
            future = request.app.state.generation.submit(partial(_render, request.app, store, model, params))
            result = await asyncio.wrap_future(future)
    except ServiceBusyError as exc:
        return JsonResponse({"error": exc.message}, status_code=503,
                            headers={"Retry-After": str(exc.retry_after_s)})
    headers = {"X-Seed": str(params.seed)}
    if params.base64:
        return JsonResponse({"image": result}, headers=headers)
    return Response(result, media_type=MEDIA_TYPES[params.image_format], headers=headers)


def _json(body: bytes, content_type: str) -> Any:
    if not body.strip():
        raise ValidationError("the request body must be a JSON object with at least a 'prompt'")
    media_type = content_type.split(";")[0].strip().lower()
    # `curl -d '{...}'` sends JSON labelled as a form, so only a body that is not JSON-like is a form.
    if media_type in ("multipart/form-data", "application/x-www-form-urlencoded") and body.lstrip()[:1] != b"{":
        raise ValidationError(f"the request body must be a JSON object (Content-Type: application/json), "
                              f"not {media_type} form fields")
    return parse_json(body)
