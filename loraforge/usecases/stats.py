"""Fleet-wide job figures for monitoring: how many jobs are in each status, how many wait.

Both read the shared database, so every API process reports the same numbers for the whole
fleet. `job_counts` has every status as a key (0 when none), so a dashboard sees a series for
each from the start. `queue_depth` counts REQUESTED jobs (not yet taken by a worker) per
machine_type. Two GROUP BY queries over the status index; nothing per user.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loraforge.db.models import FineTuneJob
from loraforge.jobstate.statuses import JobStatus


def job_counts(session: Session) -> dict[str, int]:
    """Number of jobs per status, every status present."""
    rows = session.execute(select(FineTuneJob.status, func.count()).group_by(FineTuneJob.status))
    counts = {status.value: 0 for status in JobStatus}
    counts.update({status: int(count) for status, count in rows})
    return counts


def queue_depth(session: Session) -> dict[str, int]:
    """Number of REQUESTED jobs per machine_type (only machine types with some)."""
    rows = session.execute(
        select(FineTuneJob.machine_type, func.count())
        .where(FineTuneJob.status == JobStatus.REQUESTED.value)
        .group_by(FineTuneJob.machine_type)
    )
    return {machine_type: int(count) for machine_type, count in rows}
