"""The dispatcher: turns job status changes into signed webhook messages, delivered in the background.

Each process that changes statuses (the API with its embedded worker, a fleet worker) owns one
Dispatcher. A status change looks up the owner's active webhook; if it subscribes to that status,
a thin payload is built and handed to that webhook's sender thread, which runs `delivery.deliver`, writing
every attempt to the dispatch log and deactivating the webhook on 410. Callers never wait for a
receiver.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from loraforge.config import Settings
from loraforge.datasets.url_guard import check_url
from loraforge.db.models import FineTuneJob
from loraforge.db.pipeline_models import Webhook, WebhookDispatch
from loraforge.webhooks.delivery import Attempt, Outcome, RetryPolicy, deliver

logger = logging.getLogger(__name__)


def job_payload(job: FineTuneJob, settings: Settings, event_type: str) -> dict[str, Any]:
    available = job.status == "AVAILABLE"
    return {
        "type": event_type,
        "request_id": job.id,
        "finetune_id": job.id,
        "name": job.name,
        "status": job.status,
        "trained_model_url": job.cloud_storage_url,
        "cloud_storage_url": job.cloud_storage_url,
        "inference_api_url": f"{settings.public_url}/v1/{job.slug}" if available else None,
        "error_message": job.error_message,
        "timestamp": int(time.time()),
    }


class Dispatcher:
    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings
        self._policy = RetryPolicy(
            max_attempts=settings.webhook_max_attempts,
            base_delay_s=settings.webhook_retry_base_s,
            timeout_s=settings.webhook_timeout_s,
        )
        # One sender thread per webhook: its messages arrive in status order, while a slow or
        # retrying receiver never delays another user's.
        self._senders: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def job_status_changed(self, job_id: str, status: str) -> Future[Outcome] | None:
        """Queue the event for the job owner's webhook if it subscribes to `status`."""
        with self._sessions() as session:
            job = session.get(FineTuneJob, job_id)
            if job is None:
                return None
            hook = session.execute(
                select(Webhook).where(Webhook.user_id == job.user_id, Webhook.active.is_(True))
            ).scalar_one_or_none()
            if hook is None or status not in hook.event_types:
                return None
            payload = job_payload(job, self._settings, status)
        return self._submit(hook.id, hook.url, hook.secret, status, job_id, payload)

    def send_test(self, hook: Webhook) -> tuple[str, Future[Outcome]]:
        """Send a sample payload now (POST /webhook/test); returns the message id."""
        payload = {
            "type": "TEST", "request_id": None, "finetune_id": None, "name": "webhook test",
            "status": "AVAILABLE", "trained_model_url": None, "cloud_storage_url": None,
            "inference_api_url": None, "error_message": None, "timestamp": int(time.time()),
        }
        msg_id = f"msg_{uuid.uuid4().hex}"
        return msg_id, self._submit(hook.id, hook.url, hook.secret, "TEST", None, payload, msg_id)

    def close(self, wait: bool = False) -> None:
        with self._lock:
            senders = list(self._senders.values())
            self._senders.clear()
        for sender in senders:
            sender.shutdown(wait=wait, cancel_futures=not wait)

    def _sender(self, hook_id: str) -> ThreadPoolExecutor:
        with self._lock:
            sender = self._senders.get(hook_id)
            if sender is None:
                sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"loraforge-webhook-{hook_id[:8]}")
                self._senders[hook_id] = sender
            return sender

    def _submit(self, hook_id: str, url: str, secret: str, event_type: str, job_id: str | None,
                payload: dict[str, Any], msg_id: str | None = None) -> Future[Outcome]:
        msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
        body = json.dumps(payload, separators=(",", ":")).encode()
        return self._sender(hook_id).submit(self._deliver, hook_id, url, secret, event_type, job_id, msg_id, body)

    def _deliver(self, hook_id: str, url: str, secret: str, event_type: str, job_id: str | None,
                 msg_id: str, body: bytes) -> Outcome:
        def log(attempt: Attempt) -> None:
            with self._sessions() as session:
                session.add(WebhookDispatch(
                    webhook_id=hook_id, message_id=msg_id, event_type=event_type, job_id=job_id,
                    attempt=attempt.number, status_code=attempt.status_code, error=attempt.error,
                    duration_ms=attempt.duration_ms,
                ))
                session.commit()

        outcome = deliver(
            url, secret, msg_id, body, policy=self._policy,
            check_url=lambda u: check_url(u, self._settings.allow_private_urls), on_attempt=log,
        )
        if outcome is Outcome.DISABLED:
            with self._sessions() as session:
                hook = session.get(Webhook, hook_id)
                if hook is not None:
                    hook.active = False
                    session.commit()
            logger.warning("webhook %s answered 410 Gone: deactivated", hook_id)
        logger.info("webhook %s message %s (%s, job %s): %s", hook_id, msg_id, event_type, job_id, outcome)
        return outcome
