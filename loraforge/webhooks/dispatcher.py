"""The outbox dispatcher: drains webhook messages from the database with a fixed pool of senders.

Every API process and every worker runs one. A single loop thread claims due messages (see
outbox.claim) as senders free up, and `webhook_senders` threads deliver them, one attempt each,
then settle the row: delivered, retried later (Standard Webhooks schedule with jitter, or the
receiver's Retry-After), failed for good, or the webhook disabled (410 Gone, or failing for
`webhook_disable_after_s` in a row, with the reason kept on the webhook). Because the queue is the
database, a restart loses nothing and resends under the same `webhook-id` (claims of a process
that died on this machine are released at start; others lapse after two attempt deadlines). Threads and
connections are fixed in number; a slow receiver holds one sender for at most one attempt's
deadline, and never more than one at a time.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session, sessionmaker

from loraforge.config import Settings
from loraforge.db.webhook_models import Webhook
from loraforge.jobstate.lease import db_now, new_owner, owner_is_dead
from loraforge.metrics import WEBHOOK_DELIVERIES
from loraforge.net.guard import Resolver, system_resolve
from loraforge.timestamps import from_unix, iso_seconds
from loraforge.webhooks import outbox
from loraforge.webhooks.delivery import AttemptResult, Next, Verdict, attempt, verdict

logger = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
CLAIM_MARGIN_S = 10.0  # a claim outlives an attempt (and its settling) by this before another may take it


class OutboxDispatcher:
    """Start it with `start()`, stop it with `stop()`; `wake()` makes it look for work at once."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings,
                 resolver: Resolver = system_resolve) -> None:
        self._sessions = sessions
        self._settings = settings
        self._resolver = resolver
        self._schedule = settings.webhook_schedule
        self._owner = new_owner()  # host/boot/pid/random: a restart here can tell our claims are dead
        self._senders = ThreadPoolExecutor(settings.webhook_senders, thread_name_prefix="loraforge-webhook")
        self._busy: set[str] = set()  # webhook ids with an attempt in flight here
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="loraforge-outbox", daemon=True)
        self._last_prune = 0.0

    def start(self) -> None:
        try:
            with self._sessions() as session:
                freed = outbox.release_claims(session, lambda token: owner_is_dead(token.split("#", 1)[0]))
            if freed:
                logger.info("webhook dispatcher: took back %d messages claimed by a dead process", freed)
        except Exception:  # they lapse by themselves; this only spares the wait
            logger.exception("webhook dispatcher: could not release the claims of dead processes")
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop claiming; attempts in flight finish (bounded by their deadline) or lapse and are resent."""
        self._halt.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._senders.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self._halt.is_set():
            try:
                self._tick()
            except Exception:  # a database hiccup costs one poll, never the thread
                logger.exception("webhook dispatcher: polling the outbox failed")
            self._wake.wait(self._settings.webhook_poll_s)
            self._wake.clear()

    def _tick(self) -> None:
        with self._lock:
            free = self._settings.webhook_senders - len(self._busy)
            busy = set(self._busy)
        if free > 0:
            token = f"{self._owner}#{uuid.uuid4().hex[:12]}"
            with self._sessions() as session:
                claimed = outbox.claim(session, token, free, 2 * self._settings.webhook_timeout_s + CLAIM_MARGIN_S,
                                       busy)
            for message in claimed:
                with self._lock:
                    self._busy.add(message.webhook_id)
                self._senders.submit(self._send, message, token)
        if time.monotonic() - self._last_prune > PRUNE_EVERY_S:
            self._last_prune = time.monotonic()
            with self._sessions() as session:
                outbox.prune(session, self._settings.webhook_log_days)

    def _send(self, message: outbox.Claimed, token: str) -> None:
        try:
            body = json.dumps(outbox.render_body(message.payload, self._settings.public_url),
                              separators=(",", ":")).encode()
            result = attempt(message.url, message.secret, message.message_id, body,
                             allow_private=self._settings.allow_private_urls,
                             timeout_s=self._settings.webhook_timeout_s, resolver=self._resolver)
            self._settle(message, token, result)
        except Exception:  # the claim lapses and another attempt follows; the thread lives on
            logger.exception("webhook %s: message %s could not be settled", message.webhook_id, message.message_id)
        finally:
            with self._lock:
                self._busy.discard(message.webhook_id)
            self._wake.set()  # the next message of this webhook may be due already

    def _settle(self, message: outbox.Claimed, token: str, result: AttemptResult) -> None:
        done = verdict(result, message.attempts + 1, self._schedule)
        state, retry_in_s = _state_of(done)
        with self._sessions() as session:
            outbox.settle(session, message, token, state=state, retry_in_s=retry_in_s,
                          status_code=result.status_code, error=result.error, location=result.location,
                          duration_ms=result.duration_ms, response_body=result.response_body)
            self._track_health(session, message.webhook_id, result, done)
            session.commit()  # one transaction: whoever sees the message settled sees the webhook's state
        WEBHOOK_DELIVERIES.labels(outcome=_metric_outcome(result, done)).inc()
        logger.info("webhook %s message %s (%s, job %s) attempt %d: %s%s", message.webhook_id,
                    message.message_id, message.event_type, message.job_id, message.attempts + 1, done.next,
                    f" ({result.error})" if result.error else "")

    def _track_health(self, session: Session, webhook_id: str, result: AttemptResult, done: Verdict) -> None:
        """Keep `failing_since`; disable the webhook on 410 or after failing too long in a row."""
        hook = session.get(Webhook, webhook_id)
        if hook is None:
            return
        now = db_now(session)
        reason = None
        if done.next is Next.DELIVERED:
            hook.failing_since = None
        elif done.next is Next.DISABLED:
            reason = f"the receiver answered 410 Gone on {_iso(now)}; add the webhook again to receive events"
        else:
            hook.failing_since = hook.failing_since or now
            if now - hook.failing_since >= self._settings.webhook_disable_after_s:
                reason = (f"every delivery failed from {_iso(hook.failing_since)} to {_iso(now)} "
                          f"(last error: {result.error}); fix the receiver, then add the webhook again")
        if reason is not None and hook.active:
            hook.active = False
            hook.disabled_reason = reason
            outbox.drop_pending(session, webhook_id, f"webhook disabled: {reason}")
            logger.warning("webhook %s disabled: %s", webhook_id, reason)


def _state_of(done: Verdict) -> tuple[str, float | None]:
    """The message's next state, and for a retry the seconds until it is due again."""
    if done.next is Next.RETRY:
        return outbox.PENDING, done.delay_s or 0.0
    return {Next.DELIVERED: outbox.DELIVERED, Next.FAILED: outbox.FAILED,
            Next.DISABLED: outbox.DISABLED}[done.next], None


def _metric_outcome(result: AttemptResult, done: Verdict) -> str:
    if result.location is not None:
        return "redirected"
    return {Next.DELIVERED: "delivered", Next.RETRY: "retry", Next.FAILED: "failed",
            Next.DISABLED: "disabled"}[done.next]


def _iso(ts: float) -> str:
    return iso_seconds(from_unix(ts))
