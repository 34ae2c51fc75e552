"""Job control route: POST /finetune/request/cancel with JSON `{"request_id"}`.

It answers at once: a queued job is CANCELLED immediately; a running one is stopped by its worker
at the next training step (poll details until the status is CANCELLED).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from loraforge.api.bodies import read_fields
from loraforge.api.deps import CurrentUser, SettingsDep
from loraforge.usecases.cancel import request_cancel

router = APIRouter(prefix="/finetune/request", tags=["finetune"])


@router.post("/cancel", summary="Cancel a fine-tune request: JSON {request_id}")
async def cancel(request: Request, caller: CurrentUser, settings: SettingsDep) -> JSONResponse:
    fields = await read_fields(request, settings.max_request_bytes, known=("request_id",))

    def work() -> tuple[str, str, bool]:
        with request.app.state.sessionmaker() as session:
            job, done = request_cancel(session, caller.user_id, fields.get("request_id"))
            return job.id, job.status, done

    job_id, status, _done = await run_in_threadpool(work)
    return JSONResponse({"request_id": job_id, "status": status, "cancel_requested": True})
