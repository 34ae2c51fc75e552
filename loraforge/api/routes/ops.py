"""Operations routes: /readyz, POST /finetune/request/delete, and /docs served without a CDN.

`/healthz` (in app.py) is liveness; `/readyz` answers 200 only when the database, the object store
and the broker (if one is configured) answer, else 503 with what is down. The docs page is
FastAPI's Swagger UI pointed at assets under /docs/assets, served from the pinned `swagger-ui-py`
package, so /docs works on a machine without internet.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from starlette.concurrency import run_in_threadpool

from loraforge.api.bodies import read_fields
from loraforge.api.deps import CurrentUser, SettingsDep
from loraforge.api.responses import JsonResponse
from loraforge.errors import ConflictError, NotFoundError
from loraforge.health import probe_broker, probe_database, probe_storage
from loraforge.usecases import delete as deletion

router = APIRouter()

# A running job stops at its next training step; a worker that has not stopped by then is stuck.
DELETE_WAIT_S = 30.0
DOCS_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")


def _swagger_dir() -> Path:
    import swagger_ui

    return Path(swagger_ui.__file__).parent / "static"


@router.get("/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="loraforge API",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon-32x32.png",
    )


@router.get("/docs/assets/{name}", include_in_schema=False)
async def docs_asset(name: str) -> FileResponse:
    if name not in DOCS_ASSETS:
        raise NotFoundError(f"no docs asset {name!r}")
    return FileResponse(_swagger_dir() / name, headers={"Cache-Control": "public, max-age=86400"})


def _readiness(request: Request) -> dict[str, str]:
    settings = request.app.state.settings
    checks = {
        "database": probe_database(request.app.state.engine),
        "storage": probe_storage(request.app.state.store),
    }
    if settings.uses_broker:
        checks["broker"] = probe_broker(settings.broker_url)
    return {name: problem or "ok" for name, problem in checks.items()}


@router.get("/readyz", tags=["health"],
            summary="Readiness: 200 when the database, storage and broker answer, else 503 naming what is down")
async def readyz(request: Request) -> JsonResponse:
    checks = await run_in_threadpool(_readiness, request)
    down = [f"{name}: {state}" for name, state in checks.items() if state != "ok"]
    if down:
        return JsonResponse({"error": "not ready: " + "; ".join(down), "checks": checks}, status_code=503)
    return JsonResponse({"status": "ready", "checks": checks})


@router.post(
    "/finetune/request/delete",
    tags=["finetune"],
    summary="Delete a fine-tune request and everything stored for it (JSON {request_id}); owner only",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["request_id"], "additionalProperties": False,
        "properties": {"request_id": {"type": "string", "maxLength": 64}}}}}}},
)
async def delete_request(request: Request, caller: CurrentUser, settings: SettingsDep) -> JsonResponse:
    fields = await read_fields(request, settings.max_request_bytes, known=("request_id",))
    sessions = request.app.state.sessionmaker

    def in_session(work: Any) -> Any:
        with sessions() as session:
            return work(session)

    request_id = await run_in_threadpool(
        in_session, lambda s: deletion.owned(s, caller.user_id, fields.get("request_id")).id
    )
    stopped = await run_in_threadpool(
        in_session, lambda s: deletion.cancel_if_running(s, caller.user_id, request_id)
    )
    deadline = time.monotonic() + DELETE_WAIT_S
    while not stopped:
        if time.monotonic() > deadline:
            raise ConflictError(
                f"request_id: job {request_id} was asked to stop but its worker has not stopped yet; "
                "nothing was deleted, retry in a minute"
            )
        await asyncio.sleep(0.2)
        stopped = await run_in_threadpool(in_session, lambda s: deletion.is_stopped(s, request_id))
    store = request.app.state.store
    done = await run_in_threadpool(
        in_session, lambda s: deletion.delete_job(s, store, settings.data_dir, caller.user_id, request_id)
    )
    return JsonResponse({"request_id": done.request_id, "deleted": True,
                         "objects_deleted": done.objects_deleted, "upload_kept": done.upload_kept})
