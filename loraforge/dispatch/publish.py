"""Handing submitted jobs to the queue until a worker takes them; the broker may be down meanwhile.

Submit commits the job first (the database is the truth) and then `publish`es its id; a failed
publish is logged, never raised, so a submit that committed always answers 200. The runtime's
sweeper calls `republish_unclaimed`: a REQUESTED job that no worker has leased within
`LORAFORGE_REQUEUE_AFTER_S` of its last hand-over (or that was never handed over) is published
again, with the wait doubling per attempt up to 16 times the setting, so a long backlog does not
flood the broker. Hand-over times are the database's clock (lease.db_now), as leases are.
Duplicate queue messages are harmless: the lease lets one worker train the job.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from loraforge.db.job_models import JobRun
from loraforge.db.models import FineTuneJob
from loraforge.dispatch.queue import JobQueue
from loraforge.jobstate.lease import db_now
from loraforge.jobstate.statuses import JobStatus

logger = logging.getLogger(__name__)

MAX_BACKOFF_FACTOR = 16


def publish(sessions: sessionmaker[Session], queue: JobQueue, job_id: str, machine_type: str) -> bool:
    """Enqueue `job_id` and record when; False (logged) if the queue did not take it. Never raises."""
    try:
        taken = bool(queue.enqueue(job_id, machine_type))
    except Exception:  # a broker outage must not fail the request that submitted the job
        logger.warning("job %s: could not publish it; it will be published again", job_id, exc_info=True)
        taken = False
    if taken:
        try:
            with sessions() as session:
                session.execute(
                    update(JobRun).where(JobRun.job_id == job_id)
                    .values(published_at=db_now(session), publish_count=JobRun.publish_count + 1)
                    .execution_options(synchronize_session=False)
                )
                session.commit()
        except Exception:  # only the backoff bookkeeping is lost; the sweeper publishes again
            logger.exception("job %s: could not record its publication", job_id)
    return taken


def unclaimed(session: Session, after_s: float, now: float | None = None) -> list[tuple[str, str]]:
    """(job id, machine type) of REQUESTED jobs without a lease whose hand-over is overdue."""
    now = db_now(session) if now is None else now
    rows = session.execute(
        select(FineTuneJob.id, FineTuneJob.machine_type, JobRun.published_at, JobRun.publish_count)
        .outerjoin(JobRun, JobRun.job_id == FineTuneJob.id)
        .where(FineTuneJob.status == JobStatus.REQUESTED.value)
        .where(JobRun.lease_owner.is_(None) | JobRun.job_id.is_(None))
        .where(JobRun.cancel_requested.is_not(True))
        .order_by(FineTuneJob.created_ts)
    ).all()
    due = []
    for job_id, machine_type, published_at, count in rows:
        wait = after_s * min(2 ** max((count or 1) - 1, 0), MAX_BACKOFF_FACTOR)
        if published_at is None or now - published_at >= wait:
            due.append((job_id, machine_type))
    return due


def republish_unclaimed(sessions: sessionmaker[Session], queue: JobQueue, after_s: float) -> list[str]:
    """Publish every overdue REQUESTED job again; returns the ids that the queue took."""
    with sessions() as session:
        due = unclaimed(session, after_s)
    published = []
    for job_id, machine_type in due:
        logger.info("job %s: still REQUESTED with no worker; publishing it again", job_id)
        if publish(sessions, queue, job_id, machine_type):
            published.append(job_id)
    return published
