"""The API process's services, typed: what create_app's lifespan opens and every route reads.

`open_services(settings)` migrates the database (creating LORAFORGE_API_KEY's key), starts the
key cache, opens the object store, starts the upload-expiry sweeper, the generation queue and
the job runtime (loraforge.runtime, the composition root `loraforge worker` shares), and yields
one frozen `Services`; create_app keeps it as `app.state.services`, the only attribute there, and
routes read it through `ServicesDep` (loraforge.api.deps). At exit each piece is stopped in the
reverse order. `Services.run_db` is the one way the API runs database work: on a worker thread,
never more at once than the pool has connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from anyio import CapacityLimiter, to_thread
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from loraforge import metrics
from loraforge.api.key_cache import KeyCache
from loraforge.config import Settings
from loraforge.db.accounts import create_user_with_key
from loraforge.db.base import POOL_SIZE
from loraforge.inference.queue import GenerationQueue
from loraforge.inference.serving import Generation
from loraforge.inference.shared import SharedRunner
from loraforge.runtime import Database, JobRuntime, open_database
from loraforge.storage.base import ObjectStore
from loraforge.usecases import quotas, upload_expiry
from loraforge.usecases.stats import job_counts, queue_depth

T = TypeVar("T")

# Threads for HEAD probes of foreign dataset URLs, so slow hosts never take the default pool's.
PROBE_THREADS = 8


@dataclass(frozen=True)
class Services:
    """Everything a route may use; one per app, built once its lifespan starts."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]  # autocommit: one round trip per query, no BEGIN/ROLLBACK
    store: ObjectStore
    key_cache: KeyCache
    runtime: JobRuntime
    on_submitted: Callable[[str], None]  # publishes a committed job: runtime.submitted
    generation: Generation
    probe_slots: quotas.InFlightSlots  # the key's `probes` quota
    probe_limiter: CapacityLimiter  # dataset URL probes, apart from the rest
    db_limiter: CapacityLimiter  # never more sessions than pooled connections
    fleet_metrics: CollectorRegistry  # the database-backed figures of GET /metrics

    async def run_db(self, work: Callable[[Session], T], *, readonly: bool = False) -> T:
        """`work(session)` on a database thread with a short-lived session (read-only: autocommit)."""
        factory = self.read_sessions if readonly else self.sessions

        def run() -> T:
            with factory() as session:
                return work(session)

        return await self.db_thread(run)

    async def db_thread(self, fn: Callable[[], T]) -> T:
        """`fn()` on a worker thread under the database limiter (for work that opens its own session)."""
        return await to_thread.run_sync(fn, limiter=self.db_limiter)


def _open_database(settings: Settings) -> Database:
    database = open_database(settings)
    if settings.api_key:
        with database.sessions() as session:
            create_user_with_key(session, "LORAFORGE_API_KEY", settings.api_key)
    return database


def _fleet_metrics(settings: Settings, read_sessions: sessionmaker[Session]) -> CollectorRegistry:
    def read() -> metrics.FleetFigures:
        with read_sessions() as session:
            depth = {settings.machine_type: 0, **queue_depth(session)}
            return metrics.FleetFigures(jobs=job_counts(session), queue_depth=depth)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.FleetCollector(read))  # read at scrape time, not here
    return registry


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Start every service of the API process, yield them, and stop them in the reverse order."""
    from loraforge.storage import open_store

    async with AsyncExitStack() as stack:
        database = await to_thread.run_sync(_open_database, settings)
        stack.callback(database.engine.dispose)
        key_cache = KeyCache()
        key_cache.start(settings.resolved_database_url)
        stack.callback(key_cache.stop)
        store = await to_thread.run_sync(open_store, settings)
        sweeper = asyncio.create_task(upload_expiry.run_periodically(database.sessions, store, settings))
        stack.callback(sweeper.cancel)
        queue = GenerationQueue(settings.inference_queue_size, settings.inference_wait_s)
        stack.push_async_callback(to_thread.run_sync, lambda: queue.close())  # waiting requests are answered 503
        runtime = JobRuntime(settings, database.sessions, store)
        await to_thread.run_sync(runtime.start)
        stack.push_async_callback(to_thread.run_sync, runtime.stop)
        yield Services(
            settings=settings, engine=database.engine, sessions=database.sessions,
            read_sessions=database.read_sessions, store=store, key_cache=key_cache, runtime=runtime,
            on_submitted=runtime.submitted,
            generation=Generation(settings, store, quotas.generation_slots(settings), queue, SharedRunner(settings)),
            probe_slots=quotas.probe_slots(settings), probe_limiter=CapacityLimiter(PROBE_THREADS),
            db_limiter=CapacityLimiter(POOL_SIZE), fleet_metrics=_fleet_metrics(settings, database.read_sessions),
        )
