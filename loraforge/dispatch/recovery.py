"""Recovery: find jobs nobody is working on and put them back on the queue.

The database is the truth and the queue may lose messages (the embedded queue lives in memory; a
broker may be flushed). At start the service requeues every non-terminal job that no live lease
holds, including REQUESTED jobs never taken. While running, the API sweeps every lease period for
jobs whose lease holder stopped renewing (a worker killed mid-training) and requeues those; their
next worker resumes from the last stored checkpoint.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from loraforge.db.job_models import JobRun
from loraforge.db.models import FineTuneJob
from loraforge.dispatch.queue import JobQueue
from loraforge.jobstate.lease import db_now, is_recoverable
from loraforge.jobstate.statuses import TERMINAL

logger = logging.getLogger(__name__)


def stale_jobs(session: Session, *, include_never_started: bool) -> list[tuple[str, str]]:
    """(job id, machine type) of non-terminal jobs that no live lease holds."""
    rows = session.execute(
        select(FineTuneJob.id, FineTuneJob.machine_type, JobRun)
        .outerjoin(JobRun, JobRun.job_id == FineTuneJob.id)
        .where(FineTuneJob.status.not_in([s.value for s in TERMINAL]))
        .order_by(FineTuneJob.created_ts)
    ).all()
    found = []
    now = db_now(session)
    for job_id, machine_type, run in rows:
        never_started = run is None or run.lease_owner is None
        if never_started and not include_never_started:
            continue
        if is_recoverable(run, now):
            found.append((job_id, machine_type))
    return found


def requeue_stale(sessions: sessionmaker[Session], queue: JobQueue, *, at_start: bool) -> list[str]:
    """Enqueue the stale jobs; at start also those never taken. Returns their ids."""
    with sessions() as session:
        jobs = stale_jobs(session, include_never_started=at_start)
    for job_id, machine_type in jobs:
        logger.info("job %s: requeued by recovery (%s)", job_id, "start" if at_start else "expired lease")
        queue.enqueue(job_id, machine_type)
    return [job_id for job_id, _ in jobs]
