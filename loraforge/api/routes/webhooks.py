"""The webhook endpoints of the SDK's webhook namespace: get, add, update, inactive, dispatch-logs, test.

Bodies are read like the seed endpoints' (JSON, with or without the header). Registration and
the log live in loraforge.webhooks.registry; sending lives in the dispatcher that the job runtime
puts on `app.state.jobs`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loraforge.api.bodies import read_fields
from loraforge.api.deps import CurrentUser, SettingsDep
from loraforge.errors import ConflictError, NotFoundError
from loraforge.webhooks import registry

router = APIRouter(prefix="/webhook", tags=["webhooks"])
T = TypeVar("T")
WebhookId = Annotated[str | None, Query(max_length=64)]


async def _db(request: Request, work: Callable[[Session], T]) -> T:
    def run() -> T:
        with request.app.state.sessionmaker() as session:
            return work(session)

    return await run_in_threadpool(run)


@router.get("/get", summary="Your fine-tune webhooks (the active one and any deactivated ones)")
async def get_webhooks(request: Request, caller: CurrentUser) -> JSONResponse:
    hooks = await _db(request, lambda s: [registry.render(h) for h in registry.list_for(s, caller.user_id)])
    return JSONResponse({"webhooks": hooks})


@router.post("/add", summary="Register your fine-tune webhook: {webhook_url, event: {types: [...]}}")
async def add_webhook(request: Request, caller: CurrentUser, settings: SettingsDep) -> JSONResponse:
    fields = await read_fields(request, settings.max_request_bytes)
    hook = await _db(request, lambda s: registry.render(
        registry.add(s, settings, caller.user_id, fields.get("webhook_url"), fields.get("event"))))
    return JSONResponse(hook)


@router.post("/update", summary="Change a webhook's URL and/or event types: {webhook_id, webhook_url, event}")
async def update_webhook(request: Request, caller: CurrentUser, settings: SettingsDep) -> JSONResponse:
    fields = await read_fields(request, settings.max_request_bytes)
    hook = await _db(request, lambda s: registry.render(registry.update(
        s, settings, caller.user_id, fields.get("webhook_id"), fields.get("webhook_url"), fields.get("event"))))
    return JSONResponse(hook)


@router.get("/inactive", summary="Deactivate a webhook (?webhook_id=); it receives nothing more")
async def deactivate_webhook(request: Request, caller: CurrentUser, webhook_id: WebhookId = None) -> JSONResponse:
    hook = await _db(request, lambda s: registry.render(registry.deactivate(s, caller.user_id, webhook_id)))
    return JSONResponse(hook)


@router.get("/dispatch-logs", summary="Every delivery attempt to a webhook (?webhook_id=), newest first")
async def dispatch_logs(request: Request, caller: CurrentUser, webhook_id: WebhookId = None) -> JSONResponse:
    logs = await _db(request, lambda s: registry.dispatch_log(s, caller.user_id, webhook_id))
    return JSONResponse({"webhook_id": webhook_id, "logs": logs})


@router.post("/test", summary="Send a sample payload to your active webhook now ({webhook_id} optional)")
async def test_webhook(request: Request, caller: CurrentUser, settings: SettingsDep) -> JSONResponse:
    fields = await read_fields(request, settings.max_request_bytes)
    wanted = fields.get("webhook_id")

    def pick(session: Session) -> Any:
        if wanted is not None:
            return registry.owned(session, caller.user_id, wanted)
        active = [h for h in registry.list_for(session, caller.user_id) if h.active]
        if not active:
            raise NotFoundError("you have no active webhook: add one with POST /webhook/add")
        return active[0]

    hook = await _db(request, pick)
    if not hook.active:
        raise ConflictError(f"webhook {hook.id} is inactive; add a new one with POST /webhook/add")
    msg_id, future = request.app.state.jobs.dispatcher.send_test(hook)
    try:
        # Answer with the first outcome when the receiver is quick; retries go on in the background.
        outcome = await asyncio.wait_for(asyncio.wrap_future(future), settings.webhook_timeout_s + 2)
        result = outcome.value
    except TimeoutError:
        result = "RETRYING"
    return JSONResponse({"webhook_id": hook.id, "message_id": msg_id, "outcome": result})
