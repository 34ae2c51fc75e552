"""The job runtime of one API process: queue, webhook outbox dispatcher, recovery, leftover children.

`JobRuntime` is a plain object: the API's lifespan (api/lifespan.py) builds one, calls `start()`
and `stop()`, and hands `submitted` to the submit route. It runs the embedded worker thread
without `LORAFORGE_BROKER_URL` (else a Celery publisher), runs the webhook outbox dispatcher,
requeues what recovery finds at start, and keeps a sweeper thread that requeues jobs whose worker
stopped renewing its lease and publishes again REQUESTED jobs no worker took (dispatch/publish.py). At
start it also ends the job children a dead predecessor left behind and removes their work dirs.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from loraforge.config import Settings
from loraforge.db.models import FineTuneJob
from loraforge.dispatch.publish import publish, republish_unclaimed
from loraforge.dispatch.queue import make_queue
from loraforge.dispatch.recovery import requeue_stale
from loraforge.logs import tagged
from loraforge.storage.base import ObjectStore
from loraforge.webhooks.dispatcher import OutboxDispatcher
from loraforge.worker.job_run import WorkerContext, run_job
from loraforge.worker.processes import SparePool, end_leftovers

logger = logging.getLogger(__name__)


class JobRuntime:
    """Queue + outbox dispatcher + recovery of one API process."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], store: ObjectStore) -> None:
        self.settings = settings
        self.sessions = sessions
        self.dispatcher = OutboxDispatcher(sessions, settings)
        self.context = WorkerContext(settings, sessions, store)
        warmup = None
        if settings.embedded_worker and not settings.uses_broker:
            self.context.spares = SparePool(settings.data_dir.resolve() / "work")
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
        end_leftovers(self.settings.data_dir.resolve() / "work")
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
