"""The transition table allows the happy path and FAILED/CANCELLED, and nothing out of terminals."""

import itertools

import pytest

from loraforge.errors import ConflictError
from loraforge.jobstate.statuses import HAPPY_PATH, TERMINAL, JobStatus, check_transition


def test_every_happy_path_step_is_allowed():
    for current, new in itertools.pairwise(HAPPY_PATH):
        assert check_transition(current, new) == new


@pytest.mark.parametrize("status", [s for s in HAPPY_PATH if s not in TERMINAL])
def test_any_running_status_may_fail_or_be_cancelled(status):
    assert check_transition(status, "FAILED") is JobStatus.FAILED
    assert check_transition(status, "CANCELLED") is JobStatus.CANCELLED


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_terminal_statuses_never_change(status):
    with pytest.raises(ConflictError, match="cannot change"):
        check_transition(status, "DATA_PROCESSING")


def test_skipping_ahead_is_refused():
    with pytest.raises(ConflictError):
        check_transition("REQUESTED", "AVAILABLE")
