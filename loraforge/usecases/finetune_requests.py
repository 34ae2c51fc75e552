"""The fine-tune requests of the seed API: submit, details, list, access update, uploads, download.

Everything a request can get wrong is checked here before a job is queued: the payload (see
loraforge.usecases.payloads), the dataset URL (an upload of this service must exist and belong to the
caller; a foreign URL must pass the SSRF guard and answer HEAD, or else a ranged GET that starts a ZIP,
with no size over the cap), and the
training hyper-parameters; what waits on the network or reads the store (`probe_source`,
`check_upload_object`) runs before the submit's transaction, holding no database session, and
the key's quotas (loraforge.usecases.quotas) bound its unfinished jobs and upload slots. A job is created REQUESTED in one transaction with its run row,
its first event and its webhook message; whoever runs jobs then publishes it through the
`on_submitted` callback the API passes along (dispatch/publish.py: a broker that is down delays the
job, it never fails the submit).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel
from sqlalchemy import RowMapping, bindparam, select, update
from sqlalchemy.orm import Session

from loraforge.config import Settings
from loraforge.db.job_models import JobEvent, JobRun
from loraforge.db.models import FineTuneJob, Upload
from loraforge.errors import (
    LoraforgeError,
    NotFoundError,
    PayloadTooLargeError,
    ValidationError,
)
from loraforge.families.registry import lora_is_public
from loraforge.jobstate.outbox import enqueue_job_event
from loraforge.jobstate.statuses import JobStatus
from loraforge.storage import keys
from loraforge.storage.base import ObjectStore
from loraforge.training.presets import resolve_spec
from loraforge.usecases import quotas
from loraforge.usecases.payloads import FineTuneCreate, UploadRequest
from loraforge.usecases.upload_expiry import expired_before

logger = logging.getLogger(__name__)

DOWNLOAD_LINK_SECONDS = 3600  # the seeds promise a download link valid for one hour
SOURCE_PUBLIC_URL = "PUBLIC_URL"
LIST_LIMIT_MAX = 1000
LIST_OFFSET_MAX = 10**9  # far past any real list; a bigger offset overflows the databases' int64
JOBS = FineTuneJob.__table__  # reads select the table, skipping ORM instances: list is the hot path


# Signatures a ZIP starts with: a local file header, an empty archive, a spanned archive (PKWARE APPNOTE 4.3.7).
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")


def _slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60].strip("-")
    return slug or "model"


def _store_source_type(store: ObjectStore) -> str:
    # The seeds call their own bucket AWS_S3; a local-disk store says so plainly.
    return "AWS_S3" if type(store).__name__ == "S3Store" else "LOCAL_STORAGE"


def owned_upload(session: Session, settings: Settings, user_id: str, key: str) -> Upload:
    """The caller's live upload at `key`; one NotFoundError for missing, another key's or expired."""
    upload = session.scalar(select(Upload).where(Upload.key == key))
    if upload is None or upload.user_id != user_id or (
        upload.created_ts < expired_before(settings) and not _used(session, upload.id)
    ):
        # one answer for all: another key's upload must not be told apart from a missing one
        raise NotFoundError("data_source_path: this service has no upload at that URL for this API key")
    return upload


@dataclass(frozen=True)
class UploadFacts:
    """What the store says of an uploaded dataset: its size in bytes and its sha256 (hex)."""

    size: int
    sha256: str


def check_upload_object(store: ObjectStore, settings: Settings, key: str) -> UploadFacts:
    """Size, ZIP signature and sha256 of the uploaded object. It reads the store (with S3, maybe
    the whole object to hash it): call it holding no database session."""
    size = store.size(key)
    if size is None:
        raise ValidationError(
            "data_source_path: nothing has been uploaded to that URL yet; PUT the ZIP to its presigned_url first"
        )
    if size > settings.max_upload_bytes:
        raise PayloadTooLargeError(
            f"data_source_path: the upload is {size} bytes, over the {settings.max_upload_bytes}-byte cap"
        )
    with store.open_read(key) as head:
        magic = head.read(4)
    if magic not in ZIP_MAGIC:
        # Refused now, beside the upload, rather than as a FAILED job a minute later.
        raise ValidationError("data_source_path: the uploaded file is not a ZIP archive; upload a .zip of images")
    return UploadFacts(size, store.sha256(key))


def _used(session: Session, upload_id: str) -> bool:
    return session.scalar(select(FineTuneJob.id).where(FineTuneJob.upload_id == upload_id).limit(1)) is not None


def _check_training_parameters(payload: FineTuneCreate) -> None:
    """Resolve the job's spec now, so whatever training would refuse is refused at submit."""
    resolve_spec(payload.base_model, stored_parameters(payload), trigger_word=payload.trigger_word,
                 instance_prompt=payload.instance_prompt)


def stored_parameters(payload: FineTuneCreate) -> dict[str, Any]:
    """advance_parameters as stored and shown: the keys given, aliases under their own names."""
    advance: BaseModel = payload.advance_parameters  # an AdvanceParameters, built at import time
    return advance.model_dump(exclude_none=True)


def _probe_foreign(url: str, settings: Settings) -> None:
    """SSRF guard, then the probe (HEAD, or a ranged GET where HEAD is refused); errors name the field."""
    from loraforge.datasets.download import probe

    try:
        probe(url, settings)
    except LoraforgeError as exc:
        raise type(exc)(f"data_source_path: {exc.message}") from None


def _machine_type(settings: Settings, payload: FineTuneCreate) -> str:
    machine_types = sorted({"NVIDIA_H100", settings.machine_type})
    machine_type = payload.machine_type or settings.machine_type
    if machine_type not in machine_types:
        raise ValidationError(
            f"machine_type: must be one of {', '.join(machine_types)}, got {machine_type!r}"
        )
    return machine_type


def check_submit(store: ObjectStore, settings: Settings, payload: FineTuneCreate) -> str | None:
    """What submit checks without the database or the network (machine type, hyper-parameters).

    Returns the store key of data_source_path when it is an upload of this service (then
    `owned_upload` and `check_upload_object` come next), None for a foreign URL (`probe_source`).
    """
    _machine_type(settings, payload)
    _check_training_parameters(payload)
    return store.key_from_url(payload.data_source_path)


def probe_source(settings: Settings, url: str) -> None:
    """SSRF guard and probe of a foreign data_source_path (see datasets.download.probe). It waits on
    someone else's server:
    call it holding no database session (and within the key's `probes` quota)."""
    _probe_foreign(url, settings)


def submit(
    session: Session, store: ObjectStore, settings: Settings, user_id: str, payload: FineTuneCreate,
    facts: UploadFacts | None = None,
) -> FineTuneJob:
    """Create the job REQUESTED and commit it, within the key's active_jobs quota.

    `check_submit` must have passed first, and `probe_source` for a foreign URL; for an upload of
    this store, pass `check_upload_object`'s facts, read before this session was taken (without
    them the store is read here, holding the session).
    """
    machine_type = _machine_type(settings, payload)
    quotas.lock_user(session, user_id)
    quotas.check_active_jobs(session, settings, user_id)
    upload_id, upload = None, None
    key = store.key_from_url(payload.data_source_path)
    if key is not None:
        upload = owned_upload(session, settings, user_id, key)
        facts = facts or check_upload_object(store, settings, key)
        upload.size, upload.sha256 = facts.size, facts.sha256  # recorded when the dataset is first used
        upload_id, source_type = upload.id, _store_source_type(store)
    else:
        source_type = SOURCE_PUBLIC_URL

    job_id = str(uuid.uuid4())
    job = FineTuneJob(
        id=job_id,
        user_id=user_id,
        name=payload.name,
        data_source_path=payload.data_source_path,
        instance_prompt=payload.instance_prompt,
        trigger_word=payload.trigger_word,
        base_model=payload.base_model,
        theme=payload.theme,
        machine_type=machine_type,
        train_type=payload.train_type,
        segmind_public=payload.segmind_public,
        advance_parameters=stored_parameters(payload),
        status=JobStatus.REQUESTED.value,
        slug=f"{_slugify(payload.name)}-{job_id[:8]}",
        source_type=source_type,
        upload_id=upload_id,
        model_information={},
    )
    session.add(job)
    session.flush()  # the job row first: the rows below refer to it
    session.add(JobRun(job_id=job_id, dataset_sha256=upload.sha256 if upload is not None else None))
    session.add(JobEvent(job_id=job_id, status=job.status))
    enqueue_job_event(session, job, job.status)
    session.commit()
    logger.info("job %s submitted by user %s (%s, %s)", job_id, user_id, job.base_model, source_type)
    return job


def job_not_found(request_id: str) -> NotFoundError:
    """The one answer for a job the key may not see, missing or another key's alike (details,
    metrics, cancel, delete, access-update)."""
    return NotFoundError(f"request_id: no fine-tune request {request_id!r} for this API key")


def owned_job(session: Session, user_id: str, request_id: str) -> FineTuneJob:
    """The job `request_id` if the caller owns it; else NotFoundError (public or not)."""
    job = session.get(FineTuneJob, request_id)
    if job is None or job.user_id != user_id:
        raise job_not_found(request_id)
    return job


_LIST = (
    select(JOBS)
    .where(JOBS.c.user_id == bindparam("user_id"))
    .order_by(JOBS.c.created_ts.desc(), JOBS.c.id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)


def list_jobs(session: Session, user_id: str, limit: int = 100, offset: int = 0) -> Sequence[RowMapping]:
    """The caller's jobs, newest first, as plain row mappings (column name -> value)."""
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise ValidationError(f"limit: must be between 1 and {LIST_LIMIT_MAX}, got {limit}")
    if not 0 <= offset <= LIST_OFFSET_MAX:
        raise ValidationError(f"offset: must be between 0 and {LIST_OFFSET_MAX}, got {offset}")
    # Core on the session's connection, with a statement built once: no ORM machinery and no
    # statement to build and key for the compiled cache on every call (list is a hot read).
    params = {"user_id": user_id, "limit": limit, "offset": offset}
    return session.connection().execute(_LIST, params).mappings().all()


def update_access(
    session: Session, store: ObjectStore, user_id: str, request_id: str, public: bool
) -> FineTuneJob:
    """Make the caller's model public or private, its weights in the store included."""
    job = owned_job(session, user_id, request_id)
    job.segmind_public = public
    session.commit()
    key = store.key_from_url(job.cloud_storage_url) if job.cloud_storage_url else None
    if key is not None and store.exists(key):
        # A public model downloads with no key or signature. FAST_FLUX weights stay public either
        # way: their pipeline hands out a key-less link that must keep working (the seed's contract).
        store.set_public(key, public or lora_is_public(job.base_model))
    logger.info("job %s made %s by its owner", job.id, "public" if public else "private")
    return job


def create_upload(
    session: Session, store: ObjectStore, settings: Settings, user_id: str, request: UploadRequest
) -> tuple[str, str]:
    """Reserve an upload slot within the key's quotas; returns (presigned PUT URL, s3_url).

    Only `.zip` (or `zip`) is accepted: a dataset is a ZIP archive, and nothing else should be
    stored under a name that could be served as something else.
    """
    extension = "." + request.extension.lstrip(".").lower()
    if extension != ".zip":
        raise ValidationError(f"extension: a dataset upload must be a .zip archive, got {request.extension!r}")
    quotas.lock_user(session, user_id)
    quotas.check_new_upload(session, settings, user_id)
    stem = request.name[: -len(extension)] if request.name.lower().endswith(extension) else request.name
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "dataset"
    file_id = str(uuid.uuid4())
    key = keys.upload_key(user_id, file_id, safe, extension)
    session.add(
        Upload(
            id=file_id,
            user_id=user_id,
            key=key,
            name=request.name,
            extension=extension,
        )
    )
    session.commit()
    # No content type in the signature: the seeds' clients send application/zip or nothing.
    url = store.presigned_put(key, settings.presign_expiry_s, None, request.public)
    logger.info("upload %s reserved for user %s (%s)", file_id, user_id, key)
    return url, store.object_url(key)


def record_upload(session: Session, key: str, size: int, sha256: str) -> None:
    """Note that the upload at `key` arrived (local store: the API received it), with its size."""
    session.execute(update(Upload).where(Upload.key == key)
                    .values(size=size, sha256=sha256))
    session.commit()


def _job_of_model_url(session: Session, user_id: str, key: str | None, url: str) -> FineTuneJob | None:
    model = keys.model_job_id(key)
    if model is not None:
        job_id, name = model
        job = session.get(FineTuneJob, job_id)
        if job is None:
            return None
        # The LoRA itself, or one of the files beside it: its ComfyUI copy, an intermediate LoRA.
        return job if job.cloud_storage_url == url or keys.is_model_file_of(job.slug, name) else None
    # Not an object URL of the store (a FAST_FLUX token link): one of the caller's own jobs.
    query = select(FineTuneJob).where(FineTuneJob.user_id == user_id, FineTuneJob.cloud_storage_url == url)
    return session.scalars(query.limit(1)).first()


def download_link(session: Session, store: ObjectStore, user_id: str, cloud_storage_url: str) -> str:
    """The link to a model file: plain for a public or FAST_FLUX model, else signed for an hour."""
    try:
        urlsplit(cloud_storage_url).port  # noqa: B018 - parses the netloc, which raises on 'http://[::1'
    except ValueError as exc:
        raise ValidationError(f"cloud_storage_url: not a valid URL ({exc})") from None
    key = store.key_from_url(cloud_storage_url)
    job = _job_of_model_url(session, user_id, key, cloud_storage_url)
    if job is None or (job.user_id != user_id and not job.segmind_public):
        raise NotFoundError("cloud_storage_url: no model file of this service at that URL for this API key")
    if key is None or lora_is_public(job.base_model):
        if key is not None and not store.is_public(key):
            store.set_public(key, True)
        return cloud_storage_url  # the pipeline made FAST_FLUX weights public: the URL needs no key
    if job.segmind_public:
        if not store.is_public(key):
            store.set_public(key, True)
        return store.public_url(key)
    return store.presigned_get(key, DOWNLOAD_LINK_SECONDS)
