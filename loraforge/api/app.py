"""The application factory: `create_app(settings)` builds the FastAPI app of the seed API.

Nothing happens at import time. The lifespan opens the app's services (loraforge.api.services:
the migrated database, LORAFORGE_API_KEY's key, the object store, the upload-expiry sweeper, the
generation queue and the job runtime with its embedded worker) and keeps them as
`app.state.services`, which routes read through `ServicesDep`. The routers are listed below in
the order they are mounted, which is also the order of the OpenAPI document's paths.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from loraforge.api.errors import install_error_handlers
from loraforge.api.openapi import install_openapi
from loraforge.api.raw_guard import RawRequestGuard
from loraforge.api.responses import JsonResponse
from loraforge.api.routes import (
    cancel,
    console,
    delete,
    docs,
    files,
    finetune,
    generate,
    metrics,
    readiness,
    v2,
    webhooks,
)
from loraforge.api.services import open_services
from loraforge.config import Settings

logger = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            logger.info("loraforge API ready at %s", settings.public_url)
            yield

    app = FastAPI(
        title="loraforge",
        version="0.1.0",
        summary="Self-hostable LoRA fine-tuning with Segmind's fine-tuning API",
        lifespan=lifespan,
        docs_url=None,  # served by routes/docs.py from local assets (no CDN)
        redoc_url=None,
    )
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(RawRequestGuard)

    @app.get("/healthz", tags=["health"], summary="Liveness: answers without touching the database")
    async def healthz() -> JsonResponse:
        return JsonResponse({"status": "ok"})

    # finetune is the seed API itself; cancel and delete act on its requests
    for router in (finetune.router, files.router, webhooks.router, cancel.router, generate.router,
                   metrics.router, console.router, docs.router, readiness.router, delete.router, v2.router):
        app.include_router(router)
    return app


def app_from_environment() -> FastAPI:
    """Factory for `uvicorn --factory` and multi-worker serving: Settings from the environment."""
    from loraforge.config import load_settings
    from loraforge.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)  # each uvicorn worker process
    return create_app(settings)
