"""Webhook registration: add, update, list, deactivate and read the dispatch log of a user's webhooks.

A user has at most one active fine-tune webhook (also enforced by a partial unique index). Its
events are job statuses; without a choice the defaults are the seeds' three (TRAINING_COMPLETED,
INFERENCE_QUEUED, AVAILABLE) and the two ends a client must hear of, FAILED and CANCELLED: a client
told nothing of a failure polls forever, and receivers ignore types they do not know. URLs must be http(s) and pass the SSRF guard when they are
registered (and again before every delivery). A webhook the service turned off says why in
`disabled_reason`; the dispatch log lists each message (event, job, attempts, next attempt, last
error) and each attempt.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loraforge.config import Settings
from loraforge.db.webhook_models import Webhook, WebhookDispatch, WebhookMessage
from loraforge.errors import ConflictError, NotFoundError, ValidationError
from loraforge.jobstate.statuses import JobStatus
from loraforge.net.guard import check_url
from loraforge.timestamps import from_unix, iso_precise
from loraforge.webhooks import outbox
from loraforge.webhooks.signing import new_secret

DEFAULT_EVENTS = [JobStatus.TRAINING_COMPLETED.value, JobStatus.INFERENCE_QUEUED.value, JobStatus.AVAILABLE.value,
                  JobStatus.FAILED.value, JobStatus.CANCELLED.value]
MAX_URL_LENGTH = 2048


def _iso(ts: datetime | None) -> str | None:
    return iso_precise(ts) if ts is not None else None


def _iso_unix(ts: float | None) -> str | None:
    return iso_precise(from_unix(ts)) if ts is not None else None


def render(hook: Webhook) -> dict[str, Any]:
    return {
        "webhook_id": hook.id,
        "webhook_url": hook.url,
        "event": {"types": list(hook.event_types)},
        "secret": hook.secret,
        "active": hook.active,
        "disabled_reason": hook.disabled_reason,
        "failing_since": _iso_unix(hook.failing_since),
        "created_at": _iso(hook.created_at),
        "updated_at": _iso(hook.updated_at),
    }


def validate_url(url: object, settings: Settings) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ValidationError("webhook_url is required: an http(s) URL that accepts POST")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH or not url.lower().startswith(("http://", "https://")):
        raise ValidationError("webhook_url must be an http(s) URL of at most 2048 characters")
    check_url(url, settings.allow_private_urls)
    return url


def validate_types(event: object) -> list[str]:
    if event is None:
        return list(DEFAULT_EVENTS)
    if not isinstance(event, dict) or not isinstance(event.get("types"), list) or not event["types"]:
        raise ValidationError('event must be {"types": [...]} with at least one job status')
    allowed = [s.value for s in JobStatus]
    types: list[str] = []
    for item in event["types"]:
        if not isinstance(item, str) or item.upper() not in allowed:
            raise ValidationError(f"event.types: {item!r} is not a job status; use some of {', '.join(allowed)}")
        if item.upper() not in types:
            types.append(item.upper())
    return types


def _owned(session: Session, user_id: str, webhook_id: object) -> Webhook:
    if webhook_id is None or webhook_id == "":
        raise ValidationError("webhook_id: is required (the id /webhook/add answered)")
    if not isinstance(webhook_id, str):
        raise ValidationError(f"webhook_id: must be a string (the id /webhook/add answered), got {webhook_id!r}")
    hook = session.get(Webhook, webhook_id)
    if hook is None or hook.user_id != user_id:
        raise NotFoundError(f"webhook_id: no webhook {webhook_id!r} for this API key")
    return hook


def add(session: Session, settings: Settings, user_id: str, url: object, event: object) -> Webhook:
    url = validate_url(url, settings)
    types = validate_types(event)
    active = session.execute(
        select(Webhook).where(Webhook.user_id == user_id, Webhook.active.is_(True))
    ).scalar_one_or_none()
    conflict = ConflictError(
        "you already have an active fine-tune webhook; change it with POST /webhook/update "
        "or deactivate it with GET /webhook/inactive?webhook_id=... first"
    )
    if active is not None:
        raise conflict
    hook = Webhook(id=str(uuid.uuid4()), user_id=user_id, url=url, secret=new_secret(), event_types=types,
                   active=True)
    session.add(hook)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise conflict from None
    return hook


def update(session: Session, settings: Settings, user_id: str, webhook_id: object, url: object,
           event: object) -> Webhook:
    hook = _owned(session, user_id, webhook_id)
    if url is not None:
        hook.url = validate_url(url, settings)
        hook.failing_since = None  # a new receiver starts a new streak; pending messages go to it
    if event is not None:
        hook.event_types = validate_types(event)
    session.commit()
    return hook


def list_for(session: Session, user_id: str) -> list[Webhook]:
    return list(session.execute(
        select(Webhook).where(Webhook.user_id == user_id).order_by(Webhook.created_at)
    ).scalars())


def deactivate(session: Session, user_id: str, webhook_id: object) -> Webhook:
    hook = _owned(session, user_id, webhook_id)
    hook.active = False
    outbox.drop_pending(session, hook.id, "webhook deactivated by its owner")
    session.commit()
    return hook


def owned(session: Session, user_id: str, webhook_id: object) -> Webhook:
    return _owned(session, user_id, webhook_id)


def dispatch_log(session: Session, user_id: str, webhook_id: object,
                 limit: int = 200) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(messages, attempts) of the caller's webhook, newest first, at most `limit` of each."""
    hook = _owned(session, user_id, webhook_id)
    messages = session.execute(
        select(WebhookMessage).where(WebhookMessage.webhook_id == hook.id)
        .order_by(WebhookMessage.id.desc()).limit(limit)
    ).scalars()
    attempts = session.execute(
        select(WebhookDispatch).where(WebhookDispatch.webhook_id == hook.id)
        .order_by(WebhookDispatch.id.desc()).limit(limit)
    ).scalars()
    return [render_message(m) for m in messages], [render_attempt(r) for r in attempts]


def render_message(m: WebhookMessage) -> dict[str, Any]:
    return {
        "message_id": m.message_id, "event_type": m.event_type, "request_id": m.job_id, "state": m.state,
        "attempts": m.attempts, "next_attempt_at": _iso_unix(m.next_attempt_at) if m.state == "PENDING" else None,
        "last_status_code": m.last_status_code, "last_error": m.last_error, "created_at": _iso(m.created_at),
        "finished_at": _iso(m.finished_at),
    }


def render_attempt(r: WebhookDispatch) -> dict[str, Any]:
    return {"message_id": r.message_id, "event_type": r.event_type, "request_id": r.job_id, "attempt": r.attempt,
            "status_code": r.status_code, "location": r.location, "error": r.error,
            "response_body": r.response_body, "duration_ms": r.duration_ms,
            "timestamp": _iso(r.created_at)}
