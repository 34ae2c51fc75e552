"""Segmind's v2 generation path, so the segmind SDK's default `client.run(slug, ...)` works.

The SDK (1.3.0) posts to `/v2/{slug}`, expects `{request_id, status_url, response_url}`, polls
`status_url` until `status` is COMPLETED or FAILED and then reads `response_url`. Here the POST
generates at once (the same validation, model lookup, quota, generation queue and runner as
`POST /v1/{slug}`: loraforge.inference.serving.generate_for) and stores
the answer in the object store under `generations/{user_id}/{request_id}.json`, so any API
process can answer the polls. Answers are kept GENERATION_TTL_S (1 hour): each POST deletes the
caller's older ones. The answer is `{"status": "COMPLETED", "request_id", "output": {"image":
<base64>, "image_format", "seed"}, "metrics": {"inference_seconds"}}`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from loraforge.api.bodies import read_json
from loraforge.api.deps import CurrentUser, ServicesDep, StoreDep
from loraforge.api.responses import JsonResponse
from loraforge.errors import NotFoundError
from loraforge.inference.request import EMPTY_BODY, parse_request
from loraforge.inference.serving import generate_for
from loraforge.storage.base import ObjectStore

router = APIRouter(tags=["generation"])

GENERATION_TTL_S = 3600
PREFIX = "generations/{user_id}/"


def _not_found(request_id: str) -> NotFoundError:
    return NotFoundError(f"no generation request {request_id!r} for this API key (answers are kept 1 hour)")


def _key(user_id: str, request_id: str) -> str:
    if not request_id.replace("-", "").isalnum() or len(request_id) > 64:
        raise _not_found(request_id)
    return f"{PREFIX.format(user_id=user_id)}{request_id}.json"


def _sweep(store: ObjectStore, user_id: str, now: float) -> None:
    """Delete this user's stored answers older than GENERATION_TTL_S (the id starts with its time)."""
    for key in store.list(PREFIX.format(user_id=user_id)):
        stamp = key.rsplit("/", 1)[-1].split("-", 1)[0]
        if stamp.isdigit() and now - int(stamp) > GENERATION_TTL_S:
            store.delete(key)


@router.post("/v2/{slug}", summary="Generate an image (Segmind v2: answers request_id, status_url, response_url)",
             responses={503: {"description": "the generation queue is full; retry after `Retry-After` seconds"}})
async def submit(slug: str, request: Request, caller: CurrentUser, services: ServicesDep) -> JsonResponse:
    settings, store = services.settings, services.store
    body = await read_json(request, settings.max_request_bytes, empty=EMPTY_BODY)
    params = parse_request(body, settings).with_seed()
    asked_format = params.image_format
    params = params.model_copy(update={"base64": True})  # the stored answer carries the image as text
    started = time.monotonic()
    image = await generate_for(services.generation, services.run_db, slug=slug, user_id=caller.user_id,
                               params=params)
    now = time.time()
    request_id = f"{int(now)}-{uuid.uuid4().hex}"
    answer = {"status": "COMPLETED", "request_id": request_id,
              "output": {"image": image, "image_format": asked_format, "seed": params.seed},
              "metrics": {"inference_seconds": round(time.monotonic() - started, 3)}}
    await run_in_threadpool(_sweep, store, caller.user_id, now)
    await run_in_threadpool(store.put_bytes, _key(caller.user_id, request_id), orjson.dumps(answer),
                            content_type="application/json")
    base = f"{settings.public_url}/v2/requests/{request_id}"
    return JsonResponse({"request_id": request_id, "status": "COMPLETED", "status_url": f"{base}/status",
                         "response_url": base})


def _stored(store: ObjectStore, user_id: str, request_id: str) -> dict[str, Any]:
    key = _key(user_id, request_id)
    if not store.exists(key):
        raise _not_found(request_id)
    return orjson.loads(store.get_bytes(key))  # type: ignore[no-any-return]  # a JSON object, written by us


@router.get("/v2/requests/{request_id}/status", summary="Status of a v2 generation request")
async def status(request_id: str, caller: CurrentUser, store: StoreDep) -> JsonResponse:
    answer = await run_in_threadpool(_stored, store, caller.user_id, request_id)
    return JsonResponse({"request_id": request_id, "status": answer["status"]})


@router.get("/v2/requests/{request_id}", summary="The answer of a v2 generation request")
async def result(request_id: str, caller: CurrentUser, store: StoreDep) -> JsonResponse:
    return JsonResponse(await run_in_threadpool(_stored, store, caller.user_id, request_id))
