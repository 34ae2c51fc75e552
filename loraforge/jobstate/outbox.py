"""The writing side of the webhook outbox: a job's status change adds its message in the same transaction.

`enqueue_job_event` runs inside the caller's transaction (events.move, submit), so a status change
and its message commit together or not at all; the webhooks package claims, delivers and settles
the rows later (webhooks/outbox.py). Payloads are thin: ids, status, URLs and the error. Times on
the row are the database's clock (lease.db_now), the clock the dispatchers' claims are measured on.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loraforge.db.models import FineTuneJob
from loraforge.db.webhook_models import Webhook, WebhookMessage
from loraforge.jobstate.lease import db_now

PENDING = "PENDING"


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def job_payload(job: FineTuneJob, event_type: str) -> dict[str, Any]:
    """The thin body of a job event; `inference_api_url` is a path until `render_body` adds the host."""
    return {
        "type": event_type,
        "request_id": job.id,
        "finetune_id": job.id,
        "name": job.name,
        "status": job.status,
        "trained_model_url": job.cloud_storage_url,
        "cloud_storage_url": job.cloud_storage_url,
        "inference_api_url": f"/v1/{job.slug}" if job.status == "AVAILABLE" else None,
        "error_message": job.error_message,
        "timestamp": int(time.time()),
    }


def test_payload() -> dict[str, Any]:
    return {"type": "TEST", "request_id": None, "finetune_id": None, "name": "webhook test", "status": "AVAILABLE",
            "trained_model_url": None, "cloud_storage_url": None, "inference_api_url": None,
            "error_message": None, "timestamp": int(time.time())}


def enqueue_job_event(session: Session, job: FineTuneJob, event_type: str) -> WebhookMessage | None:
    """Add the message for `job` reaching `event_type` if its owner's webhook subscribes (no commit)."""
    hook = session.execute(
        select(Webhook).where(Webhook.user_id == job.user_id, Webhook.active.is_(True))
    ).scalar_one_or_none()
    if hook is None or event_type not in hook.event_types:
        return None
    return add_message(session, hook.id, job.id, event_type, job_payload(job, event_type))


def add_message(session: Session, hook_id: str, job_id: str | None, event_type: str,
                payload: dict[str, Any]) -> WebhookMessage:
    """Add one PENDING message, due now on the database's clock (no commit)."""
    message = WebhookMessage(message_id=new_message_id(), webhook_id=hook_id, job_id=job_id, event_type=event_type,
                             payload=payload, state=PENDING, attempts=0,
                             next_attempt_at=db_now(session))
    session.add(message)
    return message
