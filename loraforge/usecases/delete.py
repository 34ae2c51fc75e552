"""Deleting a fine-tune request and everything stored for it (POST /finetune/request/delete).

Only the owner may delete. A job still running is cancelled first (`request_cancel`), and the
caller waits until its worker has stopped (`wait_until_stopped`) so nothing is uploaded after the
sweep. `delete_job` then removes, from the object store, every key under the job's prefixes
(storage.keys.job_prefixes: LoRAs and intermediate LoRAs, checkpoints, samples, the dataset report) and the
dataset upload itself unless another job of the same key still uses it; then the job's rows (its
run, events and progress go with it by ON DELETE CASCADE) and this host's local copies (the LoRA
cache and the work folder). Afterwards details answers 404 and every old link answers 404.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from loraforge.db.job_models import JobRun
from loraforge.db.models import FineTuneJob, Upload
from loraforge.jobstate.lease import db_now, is_recoverable
from loraforge.jobstate.statuses import is_terminal
from loraforge.storage.base import ObjectStore
from loraforge.storage.keys import job_prefixes
from loraforge.usecases.cancel import request_cancel, request_id_of
from loraforge.usecases.finetune_requests import owned_job

logger = logging.getLogger(__name__)

# Local folders under data_dir holding copies of a job's files on the host that made or used them.
LOCAL_DIRS = ("work/{id}", "lora-cache/models/{id}")


@dataclass(frozen=True)
class Deleted:
    request_id: str
    objects_deleted: int
    upload_kept: bool  # True when another job of this key still trains on the same upload


def owned(session: Session, user_id: str, request_id: object) -> FineTuneJob:
    """The caller's own job `request_id`; NotFoundError for any other (public ones included)."""
    return owned_job(session, user_id, request_id_of(request_id))


def cancel_if_running(session: Session, user_id: str, request_id: object) -> bool:
    """Flag the job for cancellation when it is not finished; True when it is finished already."""
    job = owned(session, user_id, request_id)
    if is_terminal(job.status):
        return True
    _job, done = request_cancel(session, user_id, job.id)
    return done


def is_stopped(session: Session, job_id: str) -> bool:
    """True when no worker works on the job: it is finished, or nobody holds a live lease on it."""
    session.expire_all()
    status = session.scalar(select(FineTuneJob.status).where(FineTuneJob.id == job_id))
    return status is None or is_terminal(status) or is_recoverable(session.get(JobRun, job_id), db_now(session))


def delete_job(session: Session, store: ObjectStore, data_dir: Path, user_id: str,
               request_id: str) -> Deleted:
    """Remove the job's objects, upload, rows and local copies; see the module docstring."""
    job = owned(session, user_id, request_id)
    keys: set[str] = set()
    for prefix in job_prefixes(job.id):
        keys.update(store.list(prefix))
    upload = session.get(Upload, job.upload_id) if job.upload_id else None
    upload_kept = False
    if upload is not None:
        others = session.scalar(
            select(func.count()).select_from(FineTuneJob)
            .where(FineTuneJob.upload_id == upload.id, FineTuneJob.id != job.id)
        )
        upload_kept = bool(others)
        if not upload_kept:
            keys.add(upload.key)
    for key in sorted(keys):
        store.delete(key)
    session.execute(delete(FineTuneJob).where(FineTuneJob.id == job.id))
    if upload is not None and not upload_kept:
        session.execute(delete(Upload).where(Upload.id == upload.id))
    session.commit()
    for folder in LOCAL_DIRS:
        shutil.rmtree(data_dir / folder.format(id=job.id), ignore_errors=True)
    logger.info("job %s deleted with %d stored objects", job.id, len(keys))
    return Deleted(job.id, len(keys), upload_kept)
