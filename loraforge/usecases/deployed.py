"""Which deployed model a generation request may use: the access rules of `POST /v1/{slug}`.

`deployed_model(session, slug, user_id)` reads one job row and answers what generation needs, or
raises the error saying why not: an unknown slug and another user's private model are the same
NotFoundError, a model not yet AVAILABLE ConflictError naming its status (and its error, if it
failed), an AVAILABLE job without a stored LoRA InferenceError.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from loraforge.db.models import FineTuneJob
from loraforge.errors import ConflictError, InferenceError, NotFoundError
from loraforge.jobstate.statuses import JobStatus


@dataclass(frozen=True)
class DeployedModel:
    """What generation needs from a job row."""

    slug: str
    base_model: str
    cloud_storage_url: str
    sha256: str | None


def deployed_model(session: Session, slug: str, user_id: str) -> DeployedModel:
    """The AVAILABLE model behind `slug` that `user_id` may call (its own, or a public one)."""
    job = session.scalar(select(FineTuneJob).where(FineTuneJob.slug == slug))
    if job is None or (job.user_id != user_id and not job.segmind_public):
        # one answer for both, so a slug's existence is not told to a key that may not use it
        raise NotFoundError(f"no model with slug {slug!r} for this API key")
    if job.status != JobStatus.AVAILABLE:
        detail = f": {job.error_message}" if job.error_message else ""
        raise ConflictError(f"model {slug!r} is not available: its status is {job.status}{detail}")
    if not job.cloud_storage_url:
        raise InferenceError(f"model {slug!r} has no LoRA file recorded; its job must be deployed again")
    sha256 = (job.model_information or {}).get("sha256")
    return DeployedModel(job.slug, job.base_model, job.cloud_storage_url, sha256)
