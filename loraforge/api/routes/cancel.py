"""POST /finetune/request/cancel with JSON `{"request_id"}`: stop a fine-tune request.

It answers at once: a queued job is CANCELLED immediately; a running one is stopped by its worker
at the next training step (poll details until the status is CANCELLED).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from loraforge.api.bodies import body_fields
from loraforge.api.deps import CurrentUser, ServicesDep
from loraforge.usecases.cancel import request_cancel

router = APIRouter(prefix="/finetune/request", tags=["finetune"])


@router.post("/cancel", summary="Cancel a fine-tune request: JSON {request_id}")
async def cancel(caller: CurrentUser, services: ServicesDep,
                 fields: Annotated[dict[str, Any], Depends(body_fields("request_id"))]) -> JSONResponse:

    def work(session: Session) -> tuple[str, str]:
        job, _done = request_cancel(session, caller.user_id, fields.get("request_id"))
        return job.id, job.status

    job_id, status = await services.run_db(work)
    return JSONResponse({"request_id": job_id, "status": status, "cancel_requested": True})
