"""Cancelling a job: flag it for the worker, or end it at once if no worker has it yet.

A running job is stopped by its worker at the next training step (the heartbeat reads the flag
twice a second) or stage boundary, which then moves it to CANCELLED and frees the GPU. A job still
waiting in the queue is moved to CANCELLED here; its queue message is dropped when a worker finds
it terminal.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from loraforge.db.models import FineTuneJob
from loraforge.errors import ConflictError, NotFoundError, ValidationError
from loraforge.jobs.events import move
from loraforge.jobs.lease import db_now, ensure_run, is_recoverable
from loraforge.jobs.statuses import JobStatus, is_terminal

logger = logging.getLogger(__name__)


def request_cancel(session: Session, user_id: str, job_id: object) -> tuple[FineTuneJob, bool]:
    """Flag `job_id` for cancellation; returns (job, True if it is already CANCELLED)."""
    if not isinstance(job_id, str) or not job_id.strip():
        raise ValidationError("request_id is required: the id that submit answered")
    job = session.get(FineTuneJob, job_id.strip())
    if job is None or job.user_id != user_id:
        raise NotFoundError(f"request_id: no fine-tune request {job_id}")
    if is_terminal(job.status):
        raise ConflictError(f"request_id: the job is already {job.status}; only a job in progress can be cancelled")
    run = ensure_run(session, job.id)
    run.cancel_requested = True
    session.commit()
    logger.info("job %s: cancel requested", job.id)
    if job.status == JobStatus.REQUESTED and is_recoverable(run, db_now(session)):
        try:
            return move(session, job.id, JobStatus.CANCELLED, message="cancelled by request"), True
        except ConflictError:
            session.rollback()  # a worker took it meanwhile; it will see the flag
    session.refresh(job)
    return job, job.status == JobStatus.CANCELLED
