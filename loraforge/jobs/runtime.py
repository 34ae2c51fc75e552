"""The job runtime of one API process: queue, webhook dispatcher, recovery, wired into the app.

`lifespan(app)` is entered by create_app's lifespan. It builds a `JobRuntime` (the embedded worker
thread without `LORAFORGE_BROKER_URL`, else a Celery publisher), sets `app.state.on_submitted` so a
submitted job is recorded and queued, requeues what recovery finds at start, and keeps a sweeper
thread that requeues jobs whose worker stopped renewing its lease.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from loraforge.config import Settings
from loraforge.db.models import FineTuneJob
from loraforge.inference.shared import runner_for
from loraforge.jobs.events import record_event
from loraforge.jobs.pipeline import WorkerContext, preload_libraries, run_job
from loraforge.jobs.queue import make_queue
from loraforge.jobs.recovery import requeue_stale
from loraforge.storage.base import ObjectStore
from loraforge.webhooks.dispatch import Dispatcher

logger = logging.getLogger(__name__)


class JobRuntime:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], store: ObjectStore,
                 runner: Callable[[], Any]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.dispatcher = Dispatcher(sessions, settings)
        self.context = WorkerContext(settings, sessions, store, runner=runner,
                                     notify=self._notify)
        self.queue = make_queue(settings, lambda job_id: run_job(self.context, job_id), preload_libraries)
        self._halt = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep, name="loraforge-recovery", daemon=True)

    def _notify(self, job_id: str, status: str) -> None:
        self.dispatcher.job_status_changed(job_id, status)

    def submitted(self, job_id: str) -> None:
        """The submit hook: record the REQUESTED event, queue the job, tell the webhook."""
        with self.sessions() as session:
            job = session.get(FineTuneJob, job_id)
            if job is None:
                return
            record_event(session, job_id, job.status)
            machine_type = job.machine_type
        self.queue.enqueue(job_id, machine_type)
        self._notify(job_id, "REQUESTED")

    def start(self) -> None:
        requeue_stale(self.sessions, self.queue, at_start=True)
        self._sweeper.start()

    def stop(self) -> None:
        self._halt.set()
        self.queue.close()
        self.dispatcher.close()

    def _sweep(self) -> None:
        while not self._halt.wait(self.settings.lease_seconds):
            try:
                requeue_stale(self.sessions, self.queue, at_start=False)
            except Exception:  # a failed sweep is retried next period
                logger.exception("recovery sweep failed")


def _runner_of(app: FastAPI) -> Callable[[], Any]:
    """The app's InferenceRunner on first use, the one /v1 serves, so deploys warm it."""
    return lambda: runner_for(app.state, app.state.settings)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime = JobRuntime(app.state.settings, app.state.sessionmaker, app.state.store, _runner_of(app))
    app.state.jobs = runtime
    app.state.on_submitted = runtime.submitted
    await run_in_threadpool(runtime.start)
    try:
        yield
    finally:
        await run_in_threadpool(runtime.stop)
