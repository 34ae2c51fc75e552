"""Status changes, their event log, and live training progress of a job.

`move(session, job_id, new_status, ...)` is the only way the pipeline changes a job's status: it
checks the move against the transition table in statuses.py, applies it with a conditional UPDATE
(so a cancel and a worker racing on the same job cannot both win), and appends a timestamped
`JobEvent` and the webhook message of the change (the outbox, jobstate/outbox.py) in the same
transaction, so a crash can never keep one and lose the other. `ProgressWriter` turns the trainer's progress callback into
throttled writes of `{step, total_steps, loss, eta_seconds}`; `job_details` reads a job with its
event log and progress in one round trip (the details endpoint's hot path).
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, exists, select, update
from sqlalchemy.orm import Session, sessionmaker

from loraforge.db.job_models import JobEvent, JobRun
from loraforge.db.models import FineTuneJob
from loraforge.errors import ConflictError, NotFoundError
from loraforge.jobstate.lease import LeaseLost, ensure_run, holds
from loraforge.jobstate.outbox import enqueue_job_event
from loraforge.jobstate.statuses import JobStatus, check_transition
from loraforge.timestamps import iso_precise, utcnow

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


def _event(status: str, created_at: datetime, message: str | None) -> dict[str, Any]:
    return {"status": status, "timestamp": iso_precise(created_at), "message": message}


def _progress(
    step: int | None, total_steps: int | None, loss: float | None, eta: float | None
) -> dict[str, Any] | None:
    if total_steps is None:
        return None
    return {"step": step, "total_steps": total_steps, "loss": loss, "eta_seconds": eta}


_JOBS, _RUNS, _EVENTS = FineTuneJob.__table__, JobRun.__table__, JobEvent.__table__
# The job's columns, then its run's progress and one event per row (labels keep names apart).
_DETAILS = (
    select(
        _JOBS,
        _RUNS.c.step.label("_run_step"),
        _RUNS.c.total_steps.label("_run_total_steps"),
        _RUNS.c.loss.label("_run_loss"),
        _RUNS.c.eta_seconds.label("_run_eta_seconds"),
        _RUNS.c.dataset.label("_run_dataset"),
        _EVENTS.c.status.label("_event_status"),
        _EVENTS.c.created_at.label("_event_created_at"),
        _EVENTS.c.message.label("_event_message"),
    )
    .select_from(
        _JOBS.outerjoin(_RUNS, _RUNS.c.job_id == _JOBS.c.id).outerjoin(
            _EVENTS, _EVENTS.c.job_id == _JOBS.c.id
        )
    )
    .where(_JOBS.c.id == bindparam("job_id"))
    .order_by(_EVENTS.c.id)
)
_JOB_COLUMNS = tuple(c.name for c in _JOBS.columns)


def job_details(
    session: Session, job_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None] | None:
    """(job columns, events, progress) of `job_id` in one query, or None when there is no such job.

    One LEFT JOIN instead of three lookups: each round trip to the database is a thread wake-up
    and a trip through the driver, which under load costs far more than the rows themselves.
    Core on the session's connection skips the ORM's statement machinery (nothing is an entity).
    """
    rows = session.connection().execute(_DETAILS, {"job_id": job_id}).all()
    if not rows:
        return None
    first = rows[0]._mapping
    job = {name: first[name] for name in _JOB_COLUMNS}
    job["dataset"] = first["_run_dataset"]  # the dataset report's summary, once prepared
    events = [
        _event(r._event_status, r._event_created_at, r._event_message)
        for r in rows
        if r._event_status is not None
    ]
    progress = _progress(
        first["_run_step"], first["_run_total_steps"], first["_run_loss"], first["_run_eta_seconds"]
    )
    return job, events, progress


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
