"""The webhook outbox: messages written with the status change they report, claimed and settled.

Messages are written by jobstate/outbox.py inside the status change's transaction. A dispatcher `claim`s due messages: on
PostgreSQL with `FOR UPDATE SKIP LOCKED`, on SQLite (one writer at a time) with a conditional
UPDATE; either way a claim is a token and an expiry written on the row, so several dispatchers
(API processes, workers) share the work and a dead one's claims lapse. A message waits while an
earlier message for the same job and webhook is still PENDING: receivers get a job's events in
status order. `settle` records an attempt's outcome; `prune` bounds what stays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from loraforge.db.webhook_models import Webhook, WebhookDispatch, WebhookMessage
from loraforge.jobstate import outbox as written
from loraforge.jobstate.lease import db_now
from loraforge.jobstate.outbox import add_message, test_payload
from loraforge.timestamps import utcnow

M = WebhookMessage
PENDING = written.PENDING  # the state a message is written in (jobstate/outbox.py)
DELIVERED, FAILED, DISABLED, DROPPED = "DELIVERED", "FAILED", "DISABLED", "DROPPED"


def render_body(payload: dict[str, Any], public_url: str) -> dict[str, Any]:
    path = payload.get("inference_api_url")
    if isinstance(path, str) and path.startswith("/"):
        return {**payload, "inference_api_url": public_url + path}
    return payload


def enqueue_test(session: Session, hook: Webhook) -> WebhookMessage:
    message = add_message(session, hook.id, None, "TEST", test_payload())
    session.commit()
    return message


@dataclass(frozen=True)
class Claimed:
    id: int
    message_id: str
    webhook_id: str
    job_id: str | None
    event_type: str
    payload: dict[str, Any]
    attempts: int
    url: str
    secret: str


def claim(session: Session, token: str, limit: int, hold_s: float, busy_hooks: set[str]) -> list[Claimed]:
    """Claim up to `limit` due messages, at most one per webhook and none of `busy_hooks`; commits."""
    now = db_now(session)
    earlier = aliased(M)
    waits = exists().where(earlier.webhook_id == M.webhook_id, earlier.job_id == M.job_id,
                           earlier.state == PENDING, earlier.id < M.id)
    query = (
        select(M.id, M.webhook_id)
        .join(Webhook, Webhook.id == M.webhook_id)
        .where(M.state == PENDING, M.next_attempt_at <= now, Webhook.active.is_(True), ~waits,
               or_(M.claimed_by.is_(None), M.claim_expires_at < now))
        .order_by(M.next_attempt_at, M.id)
        .limit(limit * 4)
    )
    if busy_hooks:
        query = query.where(M.webhook_id.not_in(busy_hooks))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=M)
    picked: dict[str, int] = {}
    for message_id, hook_id in session.execute(query):
        if hook_id not in picked and len(picked) < limit:
            picked[hook_id] = message_id  # one per webhook: a slow receiver holds one sender at most
    if not picked:
        session.rollback()
        return []
    # The WHERE repeats the claim test, so on SQLite a row another dispatcher claimed meanwhile is skipped.
    session.execute(
        update(M).where(M.id.in_(picked.values()), M.state == PENDING,
                        or_(M.claimed_by.is_(None), M.claim_expires_at < now))
        .values(claimed_by=token, claim_expires_at=now + hold_s)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        select(M, Webhook.url, Webhook.secret).join(Webhook, Webhook.id == M.webhook_id)
        .where(M.claimed_by == token)
    ).all()
    session.commit()
    return [Claimed(m.id, m.message_id, m.webhook_id, m.job_id, m.event_type, m.payload, m.attempts, url, secret)
            for m, url, secret in rows]


def settle(session: Session, claimed: Claimed, token: str, *, state: str, retry_in_s: float | None,
           status_code: int | None, error: str | None, location: str | None, duration_ms: int,
           response_body: str | None = None) -> None:
    """Record one attempt: the message's new state and a dispatch-log row (the caller commits).

    A retried message is due `retry_in_s` seconds from now on the database's clock, the clock
    `claim` compares with, so dispatchers on hosts whose clocks disagree still agree on what is due.
    """
    values: dict[str, Any] = {
        "attempts": M.attempts + 1, "state": state, "claimed_by": None, "claim_expires_at": None,
        "last_status_code": status_code, "last_error": error,
    }
    if retry_in_s is not None:
        values["next_attempt_at"] = db_now(session) + retry_in_s
    if state != PENDING:
        values["finished_at"] = utcnow()
    session.execute(update(M).where(M.id == claimed.id, M.claimed_by == token).values(**values)
                    .execution_options(synchronize_session=False))
    session.add(WebhookDispatch(webhook_id=claimed.webhook_id, message_id=claimed.message_id,
                                event_type=claimed.event_type, job_id=claimed.job_id,
                                attempt=claimed.attempts + 1, status_code=status_code, error=error,
                                duration_ms=duration_ms, location=location, response_body=response_body))


def progress_of(session: Session, message_pk: int) -> tuple[str, int]:
    """(state, attempts made) of one message."""
    row = session.execute(select(M.state, M.attempts).where(M.id == message_pk)).one()
    return row.state, row.attempts


def release_claims(session: Session, is_dead: Callable[[str], bool]) -> int:
    """Free the unexpired claims whose token `is_dead` says belongs to a dead dispatcher; commits."""
    tokens = session.scalars(
        select(M.claimed_by).where(M.state == PENDING, M.claimed_by.is_not(None)).distinct()
    ).all()
    dead = [token for token in tokens if token and is_dead(token)]
    if not dead:
        session.rollback()
        return 0
    result = session.execute(
        update(M).where(M.claimed_by.in_(dead)).values(claimed_by=None, claim_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return int(cast(CursorResult[Any], result).rowcount or 0)  # an UPDATE's result is a CursorResult


def drop_pending(session: Session, webhook_id: str, reason: str) -> int:
    """End every PENDING message of a webhook that was turned off (no commit); returns how many."""
    result = session.execute(
        update(M).where(M.webhook_id == webhook_id, M.state == PENDING)
        .values(state=DROPPED, last_error=reason, finished_at=utcnow(), claimed_by=None, claim_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(cast(CursorResult[Any], result).rowcount or 0)  # an UPDATE's result is a CursorResult


def prune(session: Session, keep_days: int) -> None:
    """Delete finished messages and attempts older than `keep_days`; commits."""
    cutoff = utcnow() - timedelta(days=keep_days)
    session.execute(delete(M).where(M.state != PENDING, M.finished_at < cutoff))
    session.execute(delete(WebhookDispatch).where(WebhookDispatch.created_at < cutoff))
    session.commit()
