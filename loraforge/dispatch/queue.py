"""The job queue: an in-process worker thread (the default) or Celery for a fleet of GPU workers.

Both carry only job ids; the database stays the truth and the lease makes a second delivery
harmless. `EmbeddedQueue` runs jobs one at a time on a background thread of the API process (one
GPU, one job). `CeleryQueue` publishes to a queue named after the job's machine type, which the
`loraforge worker --machine-type X` processes consume. `make_queue(settings, run)` picks one from
`LORAFORGE_BROKER_URL`.
"""

from __future__ import annotations

import logging
import queue as stdlib_queue
import threading
from collections.abc import Callable
from typing import Protocol

from loraforge.config import Settings

logger = logging.getLogger(__name__)

RunJob = Callable[[str], None]


class JobQueue(Protocol):
    def enqueue(self, job_id: str, machine_type: str) -> bool:
        """True if the queue took the id; may raise if a broker is unreachable (dispatch/publish.py copes)."""
        ...

    def close(self) -> None: ...


class EmbeddedQueue:
    """A single background thread that runs queued job ids in order, skipping duplicates."""

    def __init__(self, run: RunJob, warmup: Callable[[], None] | None = None) -> None:
        self._run = run
        self._warmup = warmup
        self._items: stdlib_queue.Queue[str | None] = stdlib_queue.Queue()
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="loraforge-embedded-worker", daemon=True)
        self._thread.start()

    def enqueue(self, job_id: str, machine_type: str) -> bool:
        with self._lock:
            if job_id in self._pending:
                return True
            self._pending.add(job_id)
        self._items.put(job_id)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the current job; a job cut short keeps its checkpoint and is recovered later."""
        self._items.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        if self._warmup is not None:
            try:
                self._warmup()
            except Exception:  # a failed warm-up only costs the first job its imports
                logger.exception("embedded worker warm-up failed")
        while True:
            job_id = self._items.get()
            if job_id is None:
                return
            try:
                self._run(job_id)
            except Exception:  # run() ends jobs FAILED itself; this only guards the thread
                logger.exception("job %s: embedded worker crashed", job_id)
            finally:
                with self._lock:
                    self._pending.discard(job_id)


class CeleryQueue:
    """Publishes job ids to Celery, routed to the queue of the job's machine type."""

    def __init__(self, settings: Settings) -> None:
        from loraforge.dispatch.celery_app import make_celery

        self._settings = settings
        self._app = make_celery(settings)
        # Publishing gives up within a second when the broker is down (kombu would retry for long
        # by default, holding the submit); the job stays in the database and is published again.
        options = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
        if settings.broker_url.startswith("redis"):  # a blackholed host would otherwise hang the connect
            options.update(socket_connect_timeout=2, socket_timeout=5)
        self._app.conf.broker_transport_options = {**self._app.conf.broker_transport_options, **options}

    def enqueue(self, job_id: str, machine_type: str) -> bool:
        from loraforge.dispatch.celery_app import RUN_JOB_TASK, job_queue

        queue = job_queue(self._settings, machine_type)
        self._app.send_task(RUN_JOB_TASK, args=[job_id], queue=queue,  # type: ignore[arg-type]  # a kombu Queue works; stubs say str
                            routing_key=queue.name, retry=False)
        logger.info("job %s published to %s", job_id, queue.name)
        return True

    def close(self) -> None:
        self._app.close()


class NoWorkerQueue:
    """An API-only node without a broker (LORAFORGE_EMBEDDED_WORKER=false): jobs wait in the DB.

    They stay REQUESTED until a process with a worker starts and recovery queues them.
    """

    def enqueue(self, job_id: str, machine_type: str) -> bool:
        logger.info("job %s stays REQUESTED: this process runs no worker", job_id)
        return False

    def close(self) -> None:
        pass


def make_queue(settings: Settings, run: RunJob, warmup: Callable[[], None] | None = None) -> JobQueue:
    if settings.uses_broker:
        return CeleryQueue(settings)
    if not settings.embedded_worker:
        return NoWorkerQueue()
    return EmbeddedQueue(run, warmup)
