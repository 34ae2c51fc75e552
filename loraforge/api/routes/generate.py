"""`POST /v1/{slug}`: generate an image with a deployed fine-tuned model.

The route parses the JSON body (see loraforge.inference.request) and renders the answer; the
rest is loraforge.inference.serving.generate_for, which `/v2/{slug}` calls too. The slug is the
job's `slug`; who may call it is decided by loraforge.usecases.deployed (a private model answers only
its owner's key, a public one any valid key; an unknown slug is 404 and a model not yet AVAILABLE
is 409 naming its status). A request whose width x height x steps is over
LORAFORGE_INFERENCE_MAX_PIXEL_STEPS is a 400 naming the fields; one over the key's generations
quota a 429. The answer is the image bytes with their media type, or
`{"image": "<base64>"}` with `base64: true`, and the seed used in `X-Seed`. The generation itself
runs on the app's own generation queue (loraforge.inference.queue), never in the shared thread
pool: when LORAFORGE_INFERENCE_QUEUE_SIZE requests already wait, or one waited
LORAFORGE_INFERENCE_WAIT_S for a device held by training, the answer is 503 with `Retry-After`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from loraforge.api.bodies import read_json
from loraforge.api.deps import CurrentUser, SettingsDep, StoreDep
from loraforge.api.responses import JsonResponse
from loraforge.inference.encoding import MEDIA_TYPES
from loraforge.inference.queue import GenerationQueue
from loraforge.inference.request import EMPTY_BODY, parse_request
from loraforge.inference.serving import generate_for
from loraforge.inference.shared import runner_for

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


@router.post(
    "/v1/{slug}",
    summary="Generate an image with a fine-tuned model",
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "application/json": {}}},
               503: {"description": "the generation queue is full; retry after `Retry-After` seconds"}},
)
async def generate(slug: str, request: Request, caller: CurrentUser, settings: SettingsDep,
                   store: StoreDep) -> Response:
    body = await read_json(request, settings.max_request_bytes, empty=EMPTY_BODY)
    params = parse_request(body, settings).with_seed()
    result = await generate_for(request.app.state, settings, store, slug=slug, user_id=caller.user_id,
                                params=params)
    headers = {"X-Seed": str(params.seed)}
    if params.base64:
        return JsonResponse({"image": result}, headers=headers)
    return Response(result, media_type=MEDIA_TYPES[params.image_format], headers=headers)

