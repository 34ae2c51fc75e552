"""A job as the details endpoint shows it, read in one round trip: columns, progress, events, outputs.

`job_details(session, job_id)` answers the job's columns, its run's progress and dataset summary,
its event log (oldest first) and its stored samples and intermediate LoRAs, or None when there is
no such job. Each round trip to the database is a thread wake-up and a trip through the driver,
which under load costs far more than the rows, so the three parts are one UNION ALL: the job row
(joined with its run), one row per event and one per artifact, each branch filling only its own
columns. Joining events and artifacts to the job instead would repeat the job's ~30 columns, JSON
included, on every row.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, bindparam, cast, null, select, union_all
from sqlalchemy.orm import Session

from loraforge.db.job_models import JobEvent, JobRun
from loraforge.db.models import FineTuneJob
from loraforge.db.training_models import JobArtifact
from loraforge.timestamps import iso_precise

_JOBS, _RUNS, _EVENTS = FineTuneJob.__table__, JobRun.__table__, JobEvent.__table__
_ARTIFACTS = JobArtifact.__table__


class Artifact(NamedTuple):
    """One stored sample image or intermediate LoRA (training_outputs renders them with links)."""

    kind: str
    step: int
    index: int  # type: ignore[assignment]  # the image's place in its step; shadows tuple.index, never called on it
    prompt: str | None
    key: str


class JobDetails(NamedTuple):
    job: dict[str, Any]  # the job's columns, plus `dataset` (the report's summary, or None)
    events: list[dict[str, Any]]
    progress: dict[str, Any] | None
    artifacts: list[Artifact]  # by step, kind, index


# Every branch lists every column in this order (labels keep the parts' names apart).
_JOB_PART = {c.name: c for c in _JOBS.columns}
_RUN_PART = {"_run_step": _RUNS.c.step, "_run_total_steps": _RUNS.c.total_steps, "_run_loss": _RUNS.c.loss,
             "_run_eta_seconds": _RUNS.c.eta_seconds, "_run_dataset": _RUNS.c.dataset}
_EVENT_PART = {"_event_id": _EVENTS.c.id, "_event_status": _EVENTS.c.status,
               "_event_created_at": _EVENTS.c.created_at, "_event_message": _EVENTS.c.message}
_ARTIFACT_PART = {"_artifact_kind": _ARTIFACTS.c.kind, "_artifact_step": _ARTIFACTS.c.step,
                  "_artifact_index": _ARTIFACTS.c.index, "_artifact_prompt": _ARTIFACTS.c.prompt,
                  "_artifact_key": _ARTIFACTS.c.key}
_ALL = {**_JOB_PART, **_RUN_PART, **_EVENT_PART, **_ARTIFACT_PART}
_AT = {name: i for i, name in enumerate(_ALL)}
_JOB_END, _RUN_END = len(_JOB_PART), len(_JOB_PART) + len(_RUN_PART)


def _branch(present: Mapping[str, ColumnElement[Any]]) -> Select[Any]:
    # The other parts' columns are NULLs cast to their type: PostgreSQL types each UNION pair in
    # turn and would take two untyped NULLs for text, which a timestamp or JSON cannot then join.
    return select(*(present[name].label(name) if name in present else cast(null(), column.type).label(name)
                    for name, column in _ALL.items()))


_DETAILS = union_all(
    _branch({**_JOB_PART, **_RUN_PART})
    .select_from(_JOBS.outerjoin(_RUNS, _RUNS.c.job_id == _JOBS.c.id))
    .where(_JOBS.c.id == bindparam("job_id")),
    _branch(_EVENT_PART).where(_EVENTS.c.job_id == bindparam("job_id")),
    _branch(_ARTIFACT_PART).where(_ARTIFACTS.c.job_id == bindparam("job_id")),
)
_DETAILS = _DETAILS.order_by(*(_DETAILS.selected_columns[name] for name in (
    "_event_id", "_artifact_step", "_artifact_kind", "_artifact_index")))


def _event(status: str, created_at: datetime, message: str | None) -> dict[str, Any]:
    return {"status": status, "timestamp": iso_precise(created_at), "message": message}


def _progress(
    step: int | None, total_steps: int | None, loss: float | None, eta: float | None
) -> dict[str, Any] | None:
    if total_steps is None:
        return None
    return {"step": step, "total_steps": total_steps, "loss": loss, "eta_seconds": eta}


def job_details(session: Session, job_id: str) -> JobDetails | None:
    """The job `job_id` with its progress, events and artifacts (see the module docstring), or None.

    Core on the session's connection skips the ORM's statement machinery (nothing is an entity).
    """
    job: dict[str, Any] | None = None
    events: list[dict[str, Any]] = []
    artifacts: list[Artifact] = []
    progress = None
    event_id, artifact_kind = _AT["_event_id"], _AT["_artifact_kind"]
    for row in session.connection().execute(_DETAILS, {"job_id": job_id}):
        if row[event_id] is not None:
            events.append(_event(*row[event_id + 1:event_id + 4]))
        elif row[artifact_kind] is not None:
            artifacts.append(Artifact(*row[artifact_kind:artifact_kind + 5]))
        else:
            job = dict(zip(_JOB_PART, row[:_JOB_END], strict=True))
            step, total_steps, loss, eta, job["dataset"] = row[_JOB_END:_RUN_END]
            progress = _progress(step, total_steps, loss, eta)
    if job is None:
        return None
    return JobDetails(job, events, progress, artifacts)
