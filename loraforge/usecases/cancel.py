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
from loraforge.errors import ConflictError, ValidationError
from loraforge.jobstate.events import move
from loraforge.jobstate.lease import db_now, ensure_run, is_recoverable
from loraforge.jobstate.statuses import JobStatus, is_terminal
from loraforge.usecases.finetune_requests import owned_job

logger = logging.getLogger(__name__)


def request_id_of(value: object) -> str:
    """A body's `request_id`, stripped; ValidationError naming the field when absent or not a string."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValidationError("request_id: is required (the id that submit answered)")
    if not isinstance(value, str):
        raise ValidationError(f"request_id: must be a string (the id that submit answered), got {value!r}")
    return value.strip()


def request_cancel(session: Session, user_id: str, job_id: object) -> tuple[FineTuneJob, bool]:
    """Flag `job_id` for cancellation; returns (job, True if it is already CANCELLED)."""
    job = owned_job(session, user_id, request_id_of(job_id))
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
