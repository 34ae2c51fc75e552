"""Job control routes: POST /finetune/request/cancel, and the key-less FAST_FLUX model link.

Cancel takes JSON `{"request_id"}` and answers at once; the worker stops at the next training
step and the job ends CANCELLED (poll details). A FAST_FLUX job's `cloud_storage_url` is
`/finetune/model/{token}/{slug}.safetensors`: the 256-bit token is the credential, as the Fast
Flux seed's directly downloadable weights require.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from sqlalchemy import select
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from loraforge.api.bodies import read_fields
from loraforge.api.deps import CurrentUser, SettingsDep
from loraforge.db.models import FineTuneJob
from loraforge.db.pipeline_models import JobRun
from loraforge.errors import NotFoundError
from loraforge.jobs.artifacts import PUBLIC_MODEL_ROUTE, model_key
from loraforge.jobs.cancel import request_cancel

router = APIRouter(tags=["finetune"])


@router.post("/finetune/request/cancel", summary="Cancel a fine-tune request: JSON {request_id}")
async def cancel(request: Request, caller: CurrentUser, settings: SettingsDep) -> JSONResponse:
    fields = await read_fields(request, settings.max_request_bytes)

    def work() -> tuple[str, str, bool]:
        with request.app.state.sessionmaker() as session:
            job, done = request_cancel(session, caller.user_id, fields.get("request_id"))
            return job.id, job.status, done

    job_id, status, done = await run_in_threadpool(work)
    if done:
        request.app.state.jobs.dispatcher.job_status_changed(job_id, status)
    return JSONResponse({"request_id": job_id, "status": status, "cancel_requested": True})


@router.get(PUBLIC_MODEL_ROUTE + "/{token}/{filename}", summary="Download a FAST_FLUX LoRA (no key: the link is the key)")
async def public_model(request: Request, token: str, filename: str) -> Response:
    def locate() -> str:
        with request.app.state.sessionmaker() as session:
            row = session.execute(
                select(FineTuneJob.id, FineTuneJob.slug).join(JobRun, JobRun.job_id == FineTuneJob.id)
                .where(JobRun.download_token == token)
            ).first()
        if row is None or filename != f"{row.slug}.safetensors":
            raise NotFoundError("no model file at this link")
        return model_key(row.id, row.slug)

    key = await run_in_threadpool(locate)
    store = request.app.state.store
    settings = request.app.state.settings
    tmp = Path(tempfile.mkdtemp(prefix="model-", dir=settings.data_dir)) / filename
    await run_in_threadpool(store.get_file, key, tmp)
    return FileResponse(tmp, media_type="application/octet-stream", filename=filename,
                        background=BackgroundTask(_remove, tmp))


def _remove(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)
