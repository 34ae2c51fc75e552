"""`POST /finetune/request/delete` with JSON `{"request_id"}`: delete a request and everything stored for it.

Owner only. A running job is asked to stop first and the answer waits (up to DELETE_WAIT_S) until
its worker has stopped, so nothing is deleted under a job still writing; then the job's rows and
objects go (loraforge.usecases.delete), its upload kept when another job still uses it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from loraforge.api.bodies import body_fields
from loraforge.api.deps import CurrentUser, ServicesDep
from loraforge.api.responses import JsonResponse
from loraforge.errors import ConflictError
from loraforge.usecases import delete as deletion

router = APIRouter()

# A running job stops at its next training step; a worker that has not stopped by then is stuck.
DELETE_WAIT_S = 30.0


@router.post(
    "/finetune/request/delete",
    tags=["finetune"],
    summary="Delete a fine-tune request and everything stored for it (JSON {request_id}); owner only",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["request_id"], "additionalProperties": False,
        "properties": {"request_id": {"type": "string", "maxLength": 64}}}}}}},
)
async def delete_request(caller: CurrentUser, services: ServicesDep,
                         fields: Annotated[dict[str, Any], Depends(body_fields("request_id"))]) -> JsonResponse:
    settings = services.settings
    request_id = await services.run_db(lambda s: deletion.owned(s, caller.user_id, fields.get("request_id")).id)
    stopped = await services.run_db(lambda s: deletion.cancel_if_running(s, caller.user_id, request_id))
    deadline = time.monotonic() + DELETE_WAIT_S
    while not stopped:
        if time.monotonic() > deadline:
            raise ConflictError(
                f"request_id: job {request_id} was asked to stop but its worker has not stopped yet; "
                "nothing was deleted, retry in a minute"
            )
        await asyncio.sleep(0.2)
        stopped = await services.run_db(lambda s: deletion.is_stopped(s, request_id))
    store = services.store
    done = await services.run_db(
        lambda s: deletion.delete_job(s, store, settings.data_dir, caller.user_id, request_id))
    return JsonResponse({"request_id": done.request_id, "deleted": True,
                         "objects_deleted": done.objects_deleted, "upload_kept": done.upload_kept})
