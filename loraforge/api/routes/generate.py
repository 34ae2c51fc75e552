"""`POST /v1/{slug}`: generate an image with a deployed fine-tuned model.

The route parses the JSON body (see loraforge.inference.request) and renders the answer; the
rest is loraforge.inference.serving.generate_for, which `/v2/{slug}` calls too. The slug is the
job's `slug`; who may call it is decided by loraforge.usecases.deployed (a private model answers only
its owner's key, a public one any valid key; an unknown slug is 404 and a model not yet AVAILABLE
is 409 naming its status). A request whose width x height x steps is over
LORAFORGE_INFERENCE_MAX_PIXEL_STEPS is a 400 naming the fields; one over the key's generations
quota a 429. The answer is the image bytes with their media type, or
`{"image": "<base64>"}` with `base64: true`, and the seed used in `X-Seed`. The generation itself
runs on the app's own generation queue (loraforge.inference.queue, opened and closed with the
app's services), never in the shared thread pool: when LORAFORGE_INFERENCE_QUEUE_SIZE requests already wait, or one waited
LORAFORGE_INFERENCE_WAIT_S for a device held by training, the answer is 503 with `Retry-After`.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response

from loraforge.api.bodies import read_json
from loraforge.api.deps import CurrentUser, ServicesDep
from loraforge.api.responses import JsonResponse
from loraforge.inference.encoding import MEDIA_TYPES
from loraforge.inference.request import EMPTY_BODY, parse_request
from loraforge.inference.serving import generate_for

logger = logging.getLogger(__name__)

router = APIRouter(tags=["generation"])


@router.post(
    "/v1/{slug}",
    summary="Generate an image with a fine-tuned model",
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "application/json": {}}},
               503: {"description": "the generation queue is full; retry after `Retry-After` seconds"}},
)
async def generate(slug: str, request: Request, caller: CurrentUser, services: ServicesDep) -> Response:
    settings = services.settings
    body = await read_json(request, settings.max_request_bytes, empty=EMPTY_BODY)
    params = parse_request(body, settings).with_seed()
    result = await generate_for(services.generation, services.run_db, slug=slug, user_id=caller.user_id,
                                params=params)
    headers = {"X-Seed": str(params.seed)}
    if params.base64:
        return JsonResponse({"image": result}, headers=headers)
    return Response(result, media_type=MEDIA_TYPES[params.image_format], headers=headers)

