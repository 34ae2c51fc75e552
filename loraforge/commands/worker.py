"""`loraforge worker [--machine-type NVIDIA_H100]`: one GPU worker of a fleet, fed by Celery.

It needs `LORAFORGE_BROKER_URL` (Redis or RabbitMQ), a shared database and an S3 store. It consumes
only the queue of its machine type, one job at a time (solo pool, prefetch 1, late acks), and at
start ends the job children a dead predecessor on this host left behind and requeues jobs whose
worker died, so a job killed mid-training resumes from its last stored checkpoint on whichever
worker takes it. Each job's GPU work runs in a child process that exits after the job, so the
worker itself never holds a model (nor imports torch).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from loraforge.config import load_settings
from loraforge.errors import ConfigError

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("worker", help="run a GPU worker of a fleet (needs LORAFORGE_BROKER_URL)")
    parser.add_argument("--machine-type", default=None,
                        help="the machine_type whose jobs to take (default: LORAFORGE_MACHINE_TYPE)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from loraforge.db.base import make_engine, make_sessionmaker
    from loraforge.db.migrate import upgrade
    from loraforge.dispatch.celery_app import RUN_JOB_TASK, make_celery, queue_name
    from loraforge.dispatch.queue import CeleryQueue
    from loraforge.dispatch.recovery import requeue_stale
    from loraforge.doctor import start_checks
    from loraforge.logs import job_context
    from loraforge.storage import open_store
    from loraforge.webhooks.dispatcher import OutboxDispatcher
    from loraforge.worker.job_run import WorkerContext, run_job
    from loraforge.worker.processes import SparePool, end_leftovers

    settings = load_settings()
    if not settings.uses_broker:
        raise ConfigError(
            "loraforge worker needs LORAFORGE_BROKER_URL=redis://... or amqp://...; without a broker, "
            "`loraforge serve` runs the worker inside the API process"
        )
    start_checks(settings, "worker")  # loraforge.doctor: refuse to start without weights, store, broker
    machine_type = args.machine_type or settings.machine_type
    end_leftovers(settings.data_dir.resolve() / "work")
    url = settings.resolved_database_url
    upgrade(url)
    sessions = make_sessionmaker(make_engine(url))
    store = open_store(settings)
    dispatcher = OutboxDispatcher(sessions, settings)  # a worker drains the webhook outbox too
    dispatcher.start()
    spares = SparePool(settings.data_dir.resolve() / "work")
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
