"""`GET /readyz`: 200 only when the database, the object store and the broker (if any) answer.

`/healthz` (in app.py) is liveness; `/readyz` is readiness: when something is down it answers 503
naming what. The probes run in the default thread pool, not under the database limiter, so a
busy API still answers whether its backends do.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from loraforge.api.deps import ServicesDep
from loraforge.api.responses import JsonResponse
from loraforge.api.services import Services
from loraforge.health import probe_broker, probe_database, probe_storage

router = APIRouter()


def _readiness(services: Services) -> dict[str, str]:
    settings = services.settings
    checks = {
        "database": probe_database(services.engine),
        "storage": probe_storage(services.store),
    }
    if settings.uses_broker:
        checks["broker"] = probe_broker(settings.broker_url)
    return {name: problem or "ok" for name, problem in checks.items()}


@router.get("/readyz", tags=["health"],
            summary="Readiness: 200 when the database, storage and broker answer, else 503 naming what is down")
async def readyz(services: ServicesDep) -> JsonResponse:
    checks = await run_in_threadpool(_readiness, services)
    down = [f"{name}: {state}" for name, state in checks.items() if state != "ok"]
    if down:
        return JsonResponse({"error": "not ready: " + "; ".join(down), "checks": checks}, status_code=503)
    return JsonResponse({"status": "ready", "checks": checks})
