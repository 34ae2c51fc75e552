"""Leases: the database row that says which worker holds a job, and until when.

The queue only carries job ids and may deliver one twice (acks_late, redelivery after a crash,
start-up recovery). Whoever wants to work on a job first takes its lease with one conditional
UPDATE; only one concurrent taker can win it, so a job trains once. The holder renews the lease
while it works; a lease that is not renewed expires and the job becomes recoverable. An owner
names its host, boot and process, so a restarted process on the same machine can tell at once
that a lease's holder is dead instead of waiting for the expiry.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from pathlib import Path

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loraforge.db.pipeline_models import JobRun

logger = logging.getLogger(__name__)


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
    now = time.time()
    free = or_(JobRun.lease_owner.is_(None), JobRun.lease_expires_at < now, JobRun.lease_owner == owner)
    if run.lease_owner and owner_is_dead(run.lease_owner):
        free = or_(free, JobRun.lease_owner == run.lease_owner)
    result = session.execute(
        update(JobRun)
        .where(JobRun.job_id == job_id, free)
        .values(lease_owner=owner, lease_expires_at=now + seconds, attempts=JobRun.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    won = result.rowcount == 1
    logger.info("job %s lease %s by %s", job_id, "taken" if won else "busy, not taken", owner)
    return won


def renew(session: Session, job_id: str, owner: str, seconds: float) -> bool:
    """Push the expiry forward; False means someone else now holds the job (stop working)."""
    result = session.execute(
        update(JobRun)
        .where(JobRun.job_id == job_id, JobRun.lease_owner == owner)
        .values(lease_expires_at=time.time() + seconds)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount == 1


def release(session: Session, job_id: str, owner: str) -> None:
    session.execute(
        update(JobRun)
        .where(JobRun.job_id == job_id, JobRun.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def is_recoverable(run: JobRun | None, now: float | None = None) -> bool:
    """A job nobody holds: no lease, an expired one, or one whose local holder died."""
    if run is None or run.lease_owner is None or run.lease_expires_at is None:
        return True
    if run.lease_expires_at < (time.time() if now is None else now):
        return True
    return owner_is_dead(run.lease_owner)


def held_job_ids(session: Session) -> set[str]:
    """Ids of jobs whose lease is currently live (used by recovery to skip them)."""
    rows = session.execute(select(JobRun)).scalars()
    return {run.job_id for run in rows if not is_recoverable(run)}
