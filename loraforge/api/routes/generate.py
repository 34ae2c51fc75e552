"""`POST /v1/{slug}`: generate an image with a deployed fine-tuned model.

The slug is the job's `slug`. A private model answers only its owner's key, a public one any
valid key; an unknown slug is 404 and a model not yet AVAILABLE is 409 naming its status. The
body is JSON (see loraforge.inference.request); the answer is the image bytes with their media
type, or `{"image": "<base64>"}` with `base64: true`, and the seed used in `X-Seed`. Fetching
the LoRA, generating and encoding all run in the thread pool so the event loop keeps serving
other requests while one generates; the runner's per-pipeline lock queues generations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from loraforge.api.bodies import parse_json, read_capped
from loraforge.api.deps import CurrentUser, SettingsDep, StoreDep
from loraforge.db.models import FineTuneJob
from loraforge.errors import ConflictError, ForbiddenError, InferenceError, NotFoundError, ValidationError
from loraforge.inference.encoding import MEDIA_TYPES, encode_base64, encode_image
from loraforge.inference.request import parse_request
from loraforge.inference.shared import runner_for
from loraforge.jobs.statuses import JobStatus

logger = logging.getLogger(__name__)

router = APIRouter(tags=["generation"])

@dataclass(frozen=True)
class DeployedModel:
    """What generation needs from a job row, read in one short session."""

    slug: str
    base_model: str
    cloud_storage_url: str
    sha256: str | None


def app_runner(app: FastAPI) -> Any:
    """The app's InferenceRunner, the same one the job pipeline deploys into."""
    return runner_for(app.state, app.state.settings)


def find_model(app: FastAPI, slug: str, user_id: str) -> DeployedModel:
    """The AVAILABLE model behind `slug` that this user may call, or the error saying why not."""
    with app.state.sessionmaker() as session:
        job = session.scalar(select(FineTuneJob).where(FineTuneJob.slug == slug))
        if job is None:
            raise NotFoundError(f"no model with slug {slug!r}")
        if job.user_id != user_id and not job.segmind_public:
            raise ForbiddenError(f"model {slug!r} is private; call it with its owner's API key")
        if job.status != JobStatus.AVAILABLE:
            detail = f": {job.error_message}" if job.error_message else ""
            raise ConflictError(f"model {slug!r} is not available: its status is {job.status}{detail}")
        if not job.cloud_storage_url:
            raise InferenceError(f"model {slug!r} has no LoRA file recorded; its job must be deployed again")
        sha256 = (job.model_information or {}).get("sha256")
        return DeployedModel(job.slug, job.base_model, job.cloud_storage_url, sha256)


@router.post(
    "/v1/{slug}",
    summary="Generate an image with a fine-tuned model",
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "application/json": {}}}},
)
async def generate(slug: str, request: Request, caller: CurrentUser, settings: SettingsDep,
                   store: StoreDep) -> Response:
    from loraforge.inference.lora_files import fetch_lora

    params = parse_request(_json(await read_capped(request, settings.max_request_bytes)), settings).with_seed()
    model = await run_in_threadpool(find_model, request.app, slug, caller.user_id)
    lora: Path = await run_in_threadpool(fetch_lora, store, settings, model.cloud_storage_url,
                                         sha256=model.sha256)
    runner = await run_in_threadpool(app_runner, request.app)
    image = await run_in_threadpool(runner.generate, params, base_model=model.base_model, lora_path=lora)
    headers = {"X-Seed": str(params.seed)}
    if params.base64:
        encoded = await run_in_threadpool(encode_base64, image, params.image_format)
        return JSONResponse({"image": encoded}, headers=headers)
    data = await run_in_threadpool(encode_image, image, params.image_format)
    return Response(data, media_type=MEDIA_TYPES[params.image_format], headers=headers)


def _json(body: bytes) -> Any:
    if not body.strip():
        raise ValidationError("the request body must be a JSON object with at least a 'prompt'")
    return parse_json(body)
