"""The API's hook into the job runtime: build it at start, wire it onto `app.state`, stop it at exit.

`lifespan(app)` is entered by create_app's lifespan. It builds a `JobRuntime` (runtime.py),
sets `app.state.jobs` (routes reach the webhook dispatcher through it) and `app.state.on_submitted`
(the submit route queues a job through it), and starts recovery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from loraforge.runtime import JobRuntime


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime = JobRuntime(app.state.settings, app.state.sessionmaker, app.state.store)
    app.state.jobs = runtime
    app.state.on_submitted = runtime.submitted
    await run_in_threadpool(runtime.start)
    try:
        yield
    finally:
        await run_in_threadpool(runtime.stop)
