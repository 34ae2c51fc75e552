"""Leases and status moves on a real database (SQLite and PostgreSQL through the shared fixture)."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from sqlalchemy.orm import Session, sessionmaker

from loraforge.db.job_models import JobRun
from loraforge.db.models import FineTuneJob, User
from loraforge.errors import ConflictError
from loraforge.jobstate import lease
from loraforge.jobstate.details import job_details
from loraforge.jobstate.events import move
from loraforge.jobstate.statuses import JobStatus

pytestmark = pytest.mark.backends("database")  # database behaviour is under test


def _job(sessions: sessionmaker[Session]) -> str:
    user_id, job_id = str(uuid.uuid4()), str(uuid.uuid4())
    with sessions() as session:
        session.add(User(id=user_id, name="t"))
        session.flush()
        session.add(FineTuneJob(
            id=job_id, user_id=user_id, name="j", data_source_path="http://x/d.zip", instance_prompt="p",
            trigger_word="TOK", base_model="FLUX", machine_type="NVIDIA_H100", train_type="LORA",
            advance_parameters={}, status="REQUESTED", slug=f"j-{job_id[:8]}", source_type="URL",
            model_information={},
        ))
        session.commit()
    return job_id


def test_a_held_lease_cannot_be_taken_by_a_second_worker(sessions) -> None:
    job_id = _job(sessions)
    with sessions() as session:
        assert lease.acquire(session, job_id, "a/x/1/1", 60)
        assert not lease.acquire(session, job_id, "b/x/2/2", 60)
        assert lease.acquire(session, job_id, "a/x/1/1", 60)  # re-entrant for its holder


def test_an_expired_lease_can_be_taken_over(sessions) -> None:
    job_id = _job(sessions)
    with sessions() as session:
        assert lease.acquire(session, job_id, "a/x/1/1", -1)
        assert lease.acquire(session, job_id, "b/x/2/2", 60)
        assert not lease.renew(session, job_id, "a/x/1/1", 60)  # the old holder learns it lost


def test_a_lease_of_a_dead_local_process_is_free_at_once(sessions) -> None:
    job_id = _job(sessions)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owner = lease.new_owner().split("/")
    owner[2] = str(dead.pid)
    with sessions() as session:
        assert lease.acquire(session, job_id, "/".join(owner), 3600)
        assert lease.acquire(session, job_id, lease.new_owner(), 3600)


def test_status_moves_follow_the_table_and_are_recorded_with_timestamps(sessions) -> None:
    job_id = _job(sessions)
    with sessions() as session:
        move(session, job_id, JobStatus.DATA_PROCESSING)
        with pytest.raises(ConflictError):
            move(session, job_id, JobStatus.AVAILABLE)
        move(session, job_id, JobStatus.FAILED, error_message="bad data")
        with pytest.raises(ConflictError):
            move(session, job_id, JobStatus.TRAINING_INITIATED)
        events = job_details(session, job_id)[1]  # as details shows them
    assert [e["status"] for e in events] == ["DATA_PROCESSING", "FAILED"]
    assert all(e["timestamp"].endswith("Z") for e in events)


def test_a_worker_that_lost_its_lease_cannot_move_the_job(sessions) -> None:
    job_id = _job(sessions)
    with sessions() as session:
        assert lease.acquire(session, job_id, "a/x/1/1", -1)  # expired at once
        move(session, job_id, JobStatus.DATA_PROCESSING, owner="a/x/1/1")
        assert lease.acquire(session, job_id, "b/x/2/2", 60)  # taken over
        with pytest.raises(lease.LeaseLost):
            move(session, job_id, JobStatus.FAILED, owner="a/x/1/1", error_message="stale")
        with pytest.raises(lease.LeaseLost):
            lease.check_held(session, job_id, "a/x/1/1")
        move(session, job_id, JobStatus.TRAINING_INITIATED, owner="b/x/2/2")
        events = job_details(session, job_id)[1]  # as details shows them
    assert [e["status"] for e in events] == ["DATA_PROCESSING", "TRAINING_INITIATED"]


def test_lease_times_come_from_the_database_clock(sessions) -> None:
    job_id = _job(sessions)
    with sessions() as session:
        before = lease.db_now(session)
        assert lease.acquire(session, job_id, "a/x/1/1", 60)
        expires = session.get(JobRun, job_id, populate_existing=True).lease_expires_at
        assert before + 59 <= expires <= lease.db_now(session) + 60
