"""Leases: the database row that says which worker holds a job, and until when.

The queue only carries job ids and may deliver one twice (acks_late, redelivery after a crash,
start-up recovery). Whoever wants to work on a job first takes its lease with one conditional
UPDATE; only one concurrent taker can win it, so a job trains once. The holder renews the lease
while it works; a lease that is not renewed expires and the job becomes recoverable. An owner
names its host, boot and process, so a restarted process on the same machine can tell at once
that a lease's holder is dead instead of waiting for the expiry.

Lease times are the database's clock (`db_now`), never the host's: workers on hosts whose clocks
disagree still agree on who holds a job. A worker's writes that matter (status moves, checkpoint
and LoRA records) are fenced by its lease: they apply only while `job_runs.lease_owner` is still
that worker, and `LeaseLost` says otherwise.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loraforge.db.job_models import JobRun
from loraforge.errors import ConflictError

logger = logging.getLogger(__name__)


class LeaseLost(ConflictError):
    """Another worker holds the job now (our lease expired and was taken): stop, write nothing."""


# Unix seconds (float) from the database server's own clock.
_NOW_SQL = {
    "sqlite": "SELECT (julianday('now') - 2440587.5) * 86400.0",
    "postgresql": "SELECT extract(epoch from clock_timestamp())",
}


def db_now(session: Session) -> float:
    """The database's current time as Unix seconds; the clock every lease time is measured on."""
    dialect = session.get_bind().dialect.name
    sql = _NOW_SQL.get(dialect)
    if sql is None:
        raise NotImplementedError(f"no database clock query for {dialect}")
    return float(session.execute(text(sql)).scalar_one())


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return "noboot"


def new_owner() -> str:
    """A lease owner name for this process: host/boot/pid/random."""
    return f"{socket.gethostname()}/{_boot_id()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """True only when the owner ran on this very machine and its process no longer exists."""
    try:
        host, boot, pid_text, _ = owner.split("/")
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname() or boot != _boot_id():
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def ensure_run(session: Session, job_id: str) -> JobRun:
    """The job's JobRun row, created if missing (safe against a concurrent creator)."""
    run = session.get(JobRun, job_id)
    if run is not None:
        return run
    try:
        with session.begin_nested():
            run = JobRun(job_id=job_id)
            session.add(run)
    except IntegrityError:
        run = session.get(JobRun, job_id)
        assert run is not None
    return run


def acquire(session: Session, job_id: str, owner: str, seconds: float) -> bool:
    """Take the job's lease if it is free, expired, ours, or held by a dead local process."""
    run = ensure_run(session, job_id)
    session.flush()
    now = db_now(session)
    free = or_(JobRun.lease_owner.is_(None), JobRun.lease_expires_at < now, JobRun.lease_owner == owner)
    if run.lease_owner and owner_is_dead(run.lease_owner):
        free = or_(free, JobRun.lease_owner == run.lease_owner)
    result = session.execute(
        update(JobRun)
        .where(JobRun.job_id == job_id, free)
        .values(lease_owner=owner, lease_expires_at=now + seconds)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    won = cast(CursorResult[Any], result).rowcount == 1  # an UPDATE's result is a CursorResult
    logger.info("job %s lease %s by %s", job_id, "taken" if won else "busy, not taken", owner)
    return won


def renew(session: Session, job_id: str, owner: str, seconds: float) -> bool:
    """Push the expiry forward; False means someone else now holds the job (stop working)."""
    result = session.execute(
        update(JobRun)
        .where(JobRun.job_id == job_id, JobRun.lease_owner == owner)
        .values(lease_expires_at=db_now(session) + seconds)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return cast(CursorResult[Any], result).rowcount == 1


def holds(session: Session, job_id: str, owner: str) -> bool:
    """Whether `owner` is still the job's lease holder (read now, not from the session's cache)."""
    current = session.execute(select(JobRun.lease_owner).where(JobRun.job_id == job_id)).scalar_one_or_none()
    return current == owner


def check_held(session: Session, job_id: str, owner: str) -> None:
    """Raise LeaseLost unless `owner` still holds the job (call right before a write it fences)."""
    if not holds(session, job_id, owner):
        raise LeaseLost(f"job {job_id}: the lease of {owner} was taken over; not writing")


def release(session: Session, job_id: str, owner: str) -> None:
    session.execute(
        update(JobRun)
        .where(JobRun.job_id == job_id, JobRun.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def is_recoverable(run: JobRun | None, now: float) -> bool:
    """A job nobody holds: no lease, an expired one (at `now`, the DB clock), or a dead local holder."""
    if run is None or run.lease_owner is None or run.lease_expires_at is None:
        return True
    if run.lease_expires_at < now:
        return True
    return owner_is_dead(run.lease_owner)
