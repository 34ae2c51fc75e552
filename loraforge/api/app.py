"""The application factory: `create_app(settings)` builds the FastAPI app of the seed API.

Nothing happens at import time. The lifespan opens the database (applying migrations), the object
store, and creates LORAFORGE_API_KEY's key; everything lives on `app.state` (settings, engine,
sessionmaker, read_sessionmaker, store, key_cache, on_submitted, the per-key generation and probe
slots). The lifespan also runs the sweep that deletes expired upload slots. Route modules under
loraforge.api.routes are mounted when present, so the storage, inference and job parts plug in without editing this file;
a module may also expose `lifespan(app)`, an async context manager entered at start (the
embedded worker uses that).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from types import ModuleType

from anyio import CapacityLimiter
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from loraforge.api.errors import install_error_handlers
from loraforge.api.key_cache import KeyCache
from loraforge.api.openapi import install_openapi
from loraforge.api.raw_guard import RawRequestGuard
from loraforge.api.responses import JsonResponse
from loraforge.config import Settings
from loraforge.db.accounts import create_user_with_key
from loraforge.db.base import POOL_SIZE, make_engine, make_sessionmaker
from loraforge.db.migrate import upgrade
from loraforge.usecases import quotas, upload_expiry

logger = logging.getLogger(__name__)

# Mounted in this order when the module exists; finetune is the seed API itself.
ROUTE_MODULES = ("finetune", "files", "webhooks", "jobs", "generate", "metrics", "console", "ops", "v2")
# Threads for HEAD probes of foreign dataset URLs, so slow hosts never take the default pool's.
PROBE_THREADS = 8
# Modules outside api/ that may hook into the lifespan (the embedded worker).
LIFESPAN_MODULES = ("loraforge.api.lifespan",)


def _optional_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise  # the module exists but one of its imports is missing: a real error
        return None


def open_database(app: FastAPI, settings: Settings) -> None:
    """Migrate the database, attach engine + sessionmaker, apply LORAFORGE_API_KEY."""
    url = settings.resolved_database_url
    upgrade(url)
    engine = make_engine(url)
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.read_sessionmaker = make_sessionmaker(engine, readonly=True)
    if settings.api_key:
        with app.state.sessionmaker() as session:
            create_user_with_key(session, "LORAFORGE_API_KEY", settings.api_key)


def create_app(settings: Settings) -> FastAPI:
    modules = [m for m in (_optional_module(f"loraforge.api.routes.{n}") for n in ROUTE_MODULES) if m]
    modules += [m for m in (_optional_module(n) for n in LIFESPAN_MODULES) if m]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from loraforge.storage import open_store

        await run_in_threadpool(open_database, app, settings)
        app.state.key_cache.start(settings.resolved_database_url)
        app.state.db_limiter = CapacityLimiter(POOL_SIZE)  # never more sessions than pooled connections
        app.state.probe_limiter = CapacityLimiter(PROBE_THREADS)  # dataset URL probes, apart from the rest
        app.state.store = await run_in_threadpool(open_store, settings)
        try:
            async with AsyncExitStack() as stack:
                sweeper = asyncio.create_task(
                    upload_expiry.run_periodically(app.state.sessionmaker, app.state.store, settings))
                stack.callback(sweeper.cancel)
                for module in modules:
                    hook = getattr(module, "lifespan", None)
                    if hook is not None:
                        await stack.enter_async_context(hook(app))
                logger.info("loraforge API ready at %s", settings.public_url)
                yield
        finally:
            app.state.key_cache.stop()
            app.state.engine.dispose()

    app = FastAPI(
        title="loraforge",
        version="0.1.0",
        summary="Self-hostable LoRA fine-tuning with Segmind's fine-tuning API",
        lifespan=lifespan,
        docs_url=None,  # served by routes/ops.py from local assets (no CDN)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.key_cache = KeyCache()
    app.state.on_submitted = None
    app.state.generation_slots = quotas.generation_slots(settings)
    app.state.probe_slots = quotas.probe_slots(settings)
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(RawRequestGuard)

    @app.get("/healthz", tags=["health"], summary="Liveness: answers without touching the database")
    async def healthz() -> JsonResponse:
        return JsonResponse({"status": "ok"})

    for module in modules:
        router = getattr(module, "router", None)
        if router is not None:
            app.include_router(router)
    return app


def app_from_environment() -> FastAPI:
    """Factory for `uvicorn --factory` and multi-worker serving: Settings from the environment."""
    from loraforge.config import load_settings
    from loraforge.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)  # each uvicorn worker process
    return create_app(settings)
