"""The fixed vocabulary of job statuses and the one table of allowed transitions.

Every status change in the service goes through `check_transition`, so an illegal move (say
AVAILABLE back to TRAINING_INITIATED) is refused in one place. FAILED and CANCELLED are reachable
from any non-terminal status; AVAILABLE, FAILED and CANCELLED are terminal.
"""

from __future__ import annotations

from enum import StrEnum

from loraforge.errors import ConflictError


class JobStatus(StrEnum):
    REQUESTED = "REQUESTED"
    DATA_PROCESSING = "DATA_PROCESSING"
    TRAINING_INITIATED = "TRAINING_INITIATED"
    TRAINING_COMPLETED = "TRAINING_COMPLETED"
    INFERENCE_QUEUED = "INFERENCE_QUEUED"
    AVAILABLE = "AVAILABLE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL = frozenset({JobStatus.AVAILABLE, JobStatus.FAILED, JobStatus.CANCELLED})

# The happy path, in order; each status may move to the next one, or end FAILED/CANCELLED.
HAPPY_PATH = (
    JobStatus.REQUESTED,
    JobStatus.DATA_PROCESSING,
    JobStatus.TRAINING_INITIATED,
    JobStatus.TRAINING_COMPLETED,
    JobStatus.INFERENCE_QUEUED,
    JobStatus.AVAILABLE,
)

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    status: frozenset({HAPPY_PATH[i + 1], JobStatus.FAILED, JobStatus.CANCELLED})
    for i, status in enumerate(HAPPY_PATH[:-1])
}
# A job resumed after a crash re-enters DATA_PROCESSING (inputs are re-checked) or keeps training.
TRANSITIONS[JobStatus.DATA_PROCESSING] |= {JobStatus.DATA_PROCESSING}
TRANSITIONS[JobStatus.TRAINING_INITIATED] |= {JobStatus.DATA_PROCESSING, JobStatus.TRAINING_INITIATED}
for _terminal in TERMINAL:
    TRANSITIONS[_terminal] = frozenset()


def is_terminal(status: str) -> bool:
    return JobStatus(status) in TERMINAL


def check_transition(current: str, new: str) -> JobStatus:
    """Return `new` as a JobStatus if the move is allowed, else raise ConflictError."""
    cur, nxt = JobStatus(current), JobStatus(new)
    if nxt not in TRANSITIONS[cur]:
        raise ConflictError(f"job status cannot change from {cur} to {nxt}")
    return nxt
