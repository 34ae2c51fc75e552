"""jobstate.details reads a job with its progress, events and artifacts in one query, on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from loraforge.db.job_models import JobEvent, JobRun
from loraforge.db.models import FineTuneJob, User
from loraforge.db.training_models import JobArtifact
from loraforge.jobstate.details import Artifact, job_details


def _job(session: Session, **fields: object) -> str:
    user_id, job_id = str(uuid.uuid4()), str(uuid.uuid4())
    session.add(User(id=user_id, name="t"))
    session.flush()
    session.add(FineTuneJob(
        id=job_id, user_id=user_id, name="j", data_source_path="http://x/d.zip", instance_prompt="p",
        trigger_word="TOK", base_model="FLUX", machine_type="NVIDIA_H100", train_type="LORA",
        advance_parameters={"steps": 8, "rank": 4}, status="TRAINING", slug=f"j-{job_id[:8]}", source_type="URL",
        model_information={"sha256": "ab"}, **fields,
    ))
    session.commit()
    return job_id


def test_a_bare_job_has_its_columns_and_nothing_else(sessions) -> None:
    with sessions() as session:
        job_id = _job(session)
        found = job_details(session, job_id)
        row = session.execute(select(FineTuneJob.__table__).where(FineTuneJob.id == job_id)).mappings().one()
    assert found is not None
    assert found.job == {**row, "dataset": None}
    assert found.job["advance_parameters"] == {"steps": 8, "rank": 4}
    assert found.job["created_ts"].utcoffset() is not None and found.job["created_ts"].utcoffset().seconds == 0
    assert (found.events, found.progress, found.artifacts) == ([], None, [])


def test_events_come_oldest_first_and_artifacts_by_step_kind_index(sessions) -> None:
    stamp = datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)
    with sessions() as session:
        job_id = _job(session)
        session.add(JobRun(job_id=job_id, step=3, total_steps=8, loss=0.25, eta_seconds=12.5,
                           dataset={"images_used": 4}))
        for status, message in (("REQUESTED", None), ("DATA_PROCESSING", "4 images"), ("TRAINING", None)):
            session.add(JobEvent(job_id=job_id, status=status, message=message, created_at=stamp))
            session.flush()
        # written out of order: the read orders them
        for kind, step, index in (("sample", 4, 1), ("intermediate", 4, 0), ("sample", 2, 0), ("sample", 4, 0)):
            session.add(JobArtifact(job_id=job_id, kind=kind, step=step, index=index,
                                    prompt=f"p{step}{index}" if kind == "sample" else None, key=f"k/{kind}/{step}/{index}"))
        session.commit()
        other = _job(session)  # another job's rows never mix in
        session.add(JobEvent(job_id=other, status="REQUESTED", created_at=stamp))
        session.commit()
        found = job_details(session, job_id)
    assert found is not None and found.job["id"] == job_id
    assert found.job["dataset"] == {"images_used": 4}
    assert found.progress == {"step": 3, "total_steps": 8, "loss": 0.25, "eta_seconds": 12.5}
    assert found.events == [
        {"status": "REQUESTED", "timestamp": "2026-01-02T03:04:05.120000Z", "message": None},
        {"status": "DATA_PROCESSING", "timestamp": "2026-01-02T03:04:05.120000Z", "message": "4 images"},
        {"status": "TRAINING", "timestamp": "2026-01-02T03:04:05.120000Z", "message": None},
    ]
    assert found.artifacts == [
        Artifact("sample", 2, 0, "p20", "k/sample/2/0"),
        Artifact("intermediate", 4, 0, None, "k/intermediate/4/0"),
        Artifact("sample", 4, 0, "p40", "k/sample/4/0"),
        Artifact("sample", 4, 1, "p41", "k/sample/4/1"),
    ]


def test_an_unknown_job_is_none(sessions) -> None:
    with sessions() as session:
        assert job_details(session, str(uuid.uuid4())) is None
