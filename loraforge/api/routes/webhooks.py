"""The webhook endpoints of the SDK's webhook namespace: get, add, update, inactive, dispatch-logs, test.

Bodies are read like the seed endpoints' (JSON, with or without the header); a body field or a
query parameter the endpoint does not know is a 400 naming the closest one (`?webhookid=`: did
you mean webhook_id?). Registration and the log live in loraforge.webhooks.registry; a test send
is an outbox message like any other, delivered by the dispatcher that the job runtime runs
(`services.runtime.dispatcher`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from loraforge.api.bodies import body_fields
from loraforge.api.deps import CurrentUser, ServicesDep
from loraforge.errors import ConflictError, NotFoundError
from loraforge.hints import check_known
from loraforge.webhooks import outbox, registry

router = APIRouter(prefix="/webhook", tags=["webhooks"])
WebhookId = Annotated[str | None, Query(max_length=64)]
QUERY = ("webhook_id",)  # the GETs' one query parameter: a misspelt one is refused, not ignored


@router.get("/get", summary="Your fine-tune webhooks (the active one and any deactivated ones)")
async def get_webhooks(request: Request, caller: CurrentUser, services: ServicesDep) -> JSONResponse:
    hooks = await services.run_db(lambda s: [registry.render(h) for h in registry.list_for(s, caller.user_id)])
    return JSONResponse({"webhooks": hooks})


@router.post("/add", summary="Register your fine-tune webhook: {webhook_url, event: {types: [...]}}")
async def add_webhook(caller: CurrentUser, services: ServicesDep,
                      fields: Annotated[dict[str, Any], Depends(body_fields("webhook_url", "event"))]) -> JSONResponse:
    settings = services.settings
    hook = await services.run_db(lambda s: registry.render(
        registry.add(s, settings, caller.user_id, fields.get("webhook_url"), fields.get("event"))))
    return JSONResponse(hook)


@router.post("/update", summary="Change a webhook's URL and/or event types: {webhook_id, webhook_url, event}")
async def update_webhook(caller: CurrentUser, services: ServicesDep, fields: Annotated[
        dict[str, Any], Depends(body_fields("webhook_id", "webhook_url", "event"))]) -> JSONResponse:
    settings = services.settings
    hook = await services.run_db(lambda s: registry.render(registry.update(
        s, settings, caller.user_id, fields.get("webhook_id"), fields.get("webhook_url"), fields.get("event"))))
    return JSONResponse(hook)


@router.get("/inactive", summary="Deactivate a webhook (?webhook_id=); it receives nothing more")
async def deactivate_webhook(request: Request, caller: CurrentUser, services: ServicesDep,
                             webhook_id: WebhookId = None) -> JSONResponse:
    check_known(request.query_params, QUERY)
    hook = await services.run_db(lambda s: registry.render(registry.deactivate(s, caller.user_id, webhook_id)))
    return JSONResponse(hook)


@router.get("/dispatch-logs",
            summary="A webhook's messages (state, attempts, next attempt, last error) and attempts (?webhook_id=)")
async def dispatch_logs(request: Request, caller: CurrentUser, services: ServicesDep,
                        webhook_id: WebhookId = None) -> JSONResponse:
    check_known(request.query_params, QUERY)
    messages, attempts = await services.run_db(lambda s: registry.dispatch_log(s, caller.user_id, webhook_id))
    return JSONResponse({"webhook_id": webhook_id, "messages": messages, "logs": attempts})


@router.post("/test", summary="Send a sample payload to your active webhook now ({webhook_id} optional)")
async def test_webhook(caller: CurrentUser, services: ServicesDep,
                       fields: Annotated[dict[str, Any], Depends(body_fields("webhook_id"))]) -> JSONResponse:
    settings = services.settings
    wanted = fields.get("webhook_id")

    def pick(session: Session) -> Any:
        if wanted is not None:
            return registry.owned(session, caller.user_id, wanted)
        active = [h for h in registry.list_for(session, caller.user_id) if h.active]
        if not active:
            raise NotFoundError("you have no active webhook: add one with POST /webhook/add")
        return active[0]

    hook = await services.run_db(pick)
    if not hook.active:
        raise ConflictError(f"webhook {hook.id} is inactive; add a new one with POST /webhook/add")
    message = await services.run_db(lambda s: outbox.enqueue_test(s, hook))
    services.runtime.dispatcher.wake()
    # Answer once the first attempt is settled; retries go on in the background (see dispatch-logs).
    deadline = time.monotonic() + settings.webhook_timeout_s + 2
    state = outbox.PENDING
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        state, attempts = await services.run_db(lambda s: outbox.progress_of(s, message.id))
        if attempts > 0:
            break
    return JSONResponse({"webhook_id": hook.id, "message_id": message.message_id,
                         "outcome": "RETRYING" if state == outbox.PENDING else state})
