"""The composition root of the job runtime: what `loraforge serve` and `loraforge worker` run jobs with.

Both build their pieces here and nowhere else: `open_database` (migrated engine and session
factories), the webhook outbox dispatcher, the worker context with its spare child, and recovery
(jobs whose worker died go back on the queue). `JobRuntime` is the API process's: the API's
lifespan (loraforge.api.services) builds one, calls `start()` and `stop()`, and hands `submitted`
to submit. It runs the embedded worker thread without `LORAFORGE_BROKER_URL` (else a Celery
publisher), the outbox dispatcher, requeues what recovery finds at start, and keeps a sweeper
thread that requeues jobs whose worker stopped renewing its lease and publishes again REQUESTED
jobs no worker took (dispatch/publish.py). `run_worker` is `loraforge worker`'s: one Celery
consumer of a machine type's queue. At start both end the job children a dead predecessor left
behind and remove their work dirs.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from loraforge.config import Settings
from loraforge.db.base import make_engine, make_sessionmaker
from loraforge.db.migrate import upgrade
from loraforge.db.models import FineTuneJob
from loraforge.dispatch.publish import publish, republish_unclaimed
from loraforge.dispatch.queue import make_queue
from loraforge.dispatch.recovery import requeue_stale
from loraforge.logs import job_context, tagged
from loraforge.storage.base import ObjectStore
from loraforge.webhooks.dispatcher import OutboxDispatcher
from loraforge.worker.job_run import WorkerContext, run_job
from loraforge.worker.processes import SparePool, end_leftovers

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Database:
    """A migrated database: its engine, read-write sessions and autocommit read-only ones."""

    engine: Engine
    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]


def open_database(settings: Settings) -> Database:
    """Apply the migrations, then make the engine and both session factories."""
    url = settings.resolved_database_url
    upgrade(url)
    engine = make_engine(url)
    return Database(engine, make_sessionmaker(engine), make_sessionmaker(engine, readonly=True))


def work_dir(settings: Settings) -> Path:
    """Where job children work; what a dead predecessor left there is ended at start."""
    return settings.data_dir.resolve() / "work"


class JobRuntime:
    """Queue + outbox dispatcher + recovery of one API process."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], store: ObjectStore) -> None:
        self.settings = settings
        self.sessions = sessions
        self.dispatcher = OutboxDispatcher(sessions, settings)
        self.context = WorkerContext(settings, sessions, store)
        warmup = None
        if settings.embedded_worker and not settings.uses_broker:
            self.context.spares = SparePool(work_dir(settings))
            warmup = self.context.spares.refill  # on the worker thread, which outlives its children
        self.queue = make_queue(settings, tagged(lambda job_id: run_job(self.context, job_id)), warmup)
        self._halt = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep, name="loraforge-recovery", daemon=True)

    def submitted(self, job_id: str) -> None:
        """The submit hook: publish the job (submit already committed it); never raises."""
        try:
            with self.sessions() as session:
                job = session.get(FineTuneJob, job_id)
                machine_type = job.machine_type if job is not None else None
        except Exception:  # the sweeper publishes it once the database answers again
            logger.exception("job %s: could not read it to publish it", job_id)
            return
        if machine_type is not None:
            publish(self.sessions, self.queue, job_id, machine_type)
        self.dispatcher.wake()

    def start(self) -> None:
        self.dispatcher.start()
        end_leftovers(work_dir(self.settings))
        try:
            requeue_stale(self.sessions, self.queue, at_start=True)
        except Exception:  # a broker that is down at start: the sweeper retries
            logger.exception("recovery at start failed")
        self._sweeper.start()

    def stop(self) -> None:
        self._halt.set()
        self.queue.close()
        if self.context.spares is not None:
            self.context.spares.close()
        self.dispatcher.stop()

    def _sweep(self) -> None:
        republish = self.settings.uses_broker or self.settings.embedded_worker
        period = min(self.settings.lease_seconds, self.settings.requeue_after_s)
        last_recovery = time.monotonic()
        while not self._halt.wait(period):
            try:
                if time.monotonic() - last_recovery >= self.settings.lease_seconds:
                    last_recovery = time.monotonic()
                    requeue_stale(self.sessions, self.queue, at_start=False)
                if republish:
                    republish_unclaimed(self.sessions, self.queue, self.settings.requeue_after_s)
            except Exception:  # a failed sweep is retried next period
                logger.exception("recovery sweep failed")


def run_worker(settings: Settings, machine_type: str) -> int:
    """`loraforge worker`: consume `machine_type`'s Celery queue, one job at a time, until stopped.

    Answers the Celery worker's exit code. The caller has checked the broker, weights and store.
    """
    from loraforge.dispatch.celery_app import RUN_JOB_TASK, make_celery, queue_name
    from loraforge.dispatch.queue import CeleryQueue
    from loraforge.storage import open_store

    end_leftovers(work_dir(settings))
    sessions = open_database(settings).sessions
    store = open_store(settings)
    dispatcher = OutboxDispatcher(sessions, settings)  # a worker drains the webhook outbox too
    dispatcher.start()
    spares = SparePool(work_dir(settings))
    context = WorkerContext(settings, sessions, store, spares=spares)
    app = make_celery(settings, machine_type)

    @app.task(name=RUN_JOB_TASK)
    def run_job_task(job_id: str) -> None:
        with job_context(job_id):  # every log line of the job carries its id (LORAFORGE_LOG_FORMAT=json)
            run_job(context, job_id)

    # Jobs of a worker that died (on this host or elsewhere, lease expired) go back on the queue.
    publisher = CeleryQueue(settings)
    requeue_stale(sessions, publisher, at_start=False)
    publisher.close()
    logger.info("worker for %s consuming %s", machine_type, queue_name(machine_type))
    worker = app.Worker(
        queues=[queue_name(machine_type)], concurrency=1, pool="solo", loglevel=settings.log_level,
        without_gossip=True, without_mingle=True, without_heartbeat=True,
    )
    spares.refill()  # from this thread, which runs the jobs (solo pool) and outlives their children
    try:
        worker.start()
    finally:
        spares.close()
        dispatcher.stop()
    return int(worker.exitcode or 0)
