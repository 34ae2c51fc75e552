"""Status changes, their event log, and live training progress of a job.

`move(session, job_id, new_status, ...)` is the only way the pipeline changes a job's status: it
checks the move against the transition table in statuses.py, applies it with a conditional UPDATE
(so a cancel and a worker racing on the same job cannot both win), and appends a timestamped
`JobEvent` and the webhook message of the change (the outbox, jobstate/outbox.py) in the same
transaction, so a crash can never keep one and lose the other. `ProgressWriter` turns the trainer's progress callback into
throttled writes of `{step, total_steps, loss, eta_seconds}`; jobstate.details reads them back.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, cast

from sqlalchemy import CursorResult, exists, update
from sqlalchemy.orm import Session, sessionmaker

from loraforge.db.job_models import JobEvent, JobRun
from loraforge.db.models import FineTuneJob
from loraforge.errors import ConflictError, NotFoundError
from loraforge.jobstate.lease import LeaseLost, ensure_run, holds
from loraforge.jobstate.outbox import enqueue_job_event
from loraforge.jobstate.statuses import JobStatus, check_transition
from loraforge.timestamps import utcnow

logger = logging.getLogger(__name__)


def move(
    session: Session,
    job_id: str,
    new: JobStatus,
    *,
    message: str | None = None,
    owner: str | None = None,
    **fields: Any,
) -> FineTuneJob:
    """Change the job's status (plus any `fields`), record the event, commit; return the job.

    With `owner` (a worker's lease name) the UPDATE also requires `job_runs.lease_owner == owner`,
    so a worker that lost its lease cannot move the job: LeaseLost. ConflictError when the status
    changed meanwhile or the move is not in the transition table.
    """
    job = session.get(FineTuneJob, job_id, populate_existing=True)
    if job is None:
        raise NotFoundError(f"no fine-tune job {job_id}")
    current = job.status
    check_transition(current, new)
    statement = update(FineTuneJob).where(FineTuneJob.id == job_id, FineTuneJob.status == current)
    if owner is not None:
        statement = statement.where(exists().where(JobRun.job_id == job_id, JobRun.lease_owner == owner))
    result = session.execute(
        statement.values(status=new.value, updated_ts=utcnow(), **fields)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount != 1:  # an UPDATE's result is a CursorResult
        session.rollback()
        if owner is not None and not holds(session, job_id, owner):
            raise LeaseLost(f"job {job_id}: the lease of {owner} was taken over; not moving it to {new}")
        raise ConflictError(f"job {job_id} changed status while moving it from {current} to {new}")
    session.add(JobEvent(job_id=job_id, status=new.value, message=message))
    session.refresh(job)  # the row as updated, for the webhook payload
    enqueue_job_event(session, job, new.value)
    session.commit()
    logger.info("job %s: %s -> %s%s", job_id, current, new, f" ({message})" if message else "")
    return job


def record_event(session: Session, job_id: str, status: str, message: str | None = None) -> None:
    """Append an event without a status change (the initial REQUESTED, a resume note)."""
    session.add(JobEvent(job_id=job_id, status=status, message=message))
    session.commit()


class ProgressWriter:
    """A progress callback that writes at most once per `interval_s`, and always the last step."""

    def __init__(self, sessions: sessionmaker[Session], job_id: str, interval_s: float,
                 owner: str | None = None) -> None:
        self._sessions = sessions
        self._owner = owner  # when set, only written while this worker holds the lease
        self._job_id = job_id
        self._interval_s = interval_s
        self._last = 0.0

    def __call__(self, progress: Any) -> None:
        now = time.monotonic()
        final = progress.step >= progress.total_steps
        if not final and now - self._last < self._interval_s:
            return
        self._last = now
        loss = float(progress.loss) if progress.loss is not None and math.isfinite(progress.loss) else None
        with self._sessions() as session:
            ensure_run(session, self._job_id)
            statement = update(JobRun).where(JobRun.job_id == self._job_id)
            if self._owner is not None:
                statement = statement.where(JobRun.lease_owner == self._owner)
            session.execute(
                statement
                .values(
                    step=progress.step,
                    total_steps=progress.total_steps,
                    loss=loss,
                    eta_seconds=progress.eta_seconds,
                )
                .execution_options(synchronize_session=False)
            )
            session.commit()
