"""Per-key quotas, so one key cannot queue unlimited work or fill the store.

Each quota is a setting (LORAFORGE_QUOTA_*); over one, the caller gets QuotaExceededError (429,
`Retry-After`, the quota's name):

- `active_jobs`: fine-tune requests of the key not yet AVAILABLE, FAILED or CANCELLED;
- `pending_uploads`: upload slots reserved and not yet used by a submit (they expire, see
  loraforge.usecases.upload_expiry);
- `upload_bytes`: bytes of the key's stored uploads, checked when a slot is reserved and, with the
  local store, while the upload streams in (S3 takes pre-signed PUTs itself, so there sizes count
  once a submit records them);
- `generations`: `/v1/{slug}` requests of the key in flight in this process (`generation_slots`);
- `probes`: HEAD probes of foreign dataset URLs of the key in flight in this process (`probe_slots`).

The database checks run after `lock_user`, which serialises one key's quota-checked writes until
the transaction ends, so two concurrent submits cannot both take the last place.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from loraforge.config import Settings
from loraforge.db.models import FineTuneJob, Upload, User
from loraforge.errors import QuotaExceededError
from loraforge.jobstate.statuses import TERMINAL
from loraforge.storage.atomic import format_bytes

RETRY_JOBS_S = 60
RETRY_UPLOADS_S = 300
RETRY_GENERATION_S = 5
RETRY_PROBE_S = 10
_TERMINAL = sorted(s.value for s in TERMINAL)


def lock_user(session: Session, user_id: str) -> None:
    """Hold the key's row (PostgreSQL) or the write lock (SQLite) until the transaction ends."""
    session.execute(update(User).where(User.id == user_id).values(name=User.name))


def check_active_jobs(session: Session, settings: Settings, user_id: str) -> None:
    """QuotaExceededError when the key already has `quota_active_jobs` unfinished requests."""
    active = session.scalar(
        select(func.count()).select_from(FineTuneJob)
        .where(FineTuneJob.user_id == user_id, FineTuneJob.status.not_in(_TERMINAL))
    ) or 0
    if active >= settings.quota_active_jobs:
        raise QuotaExceededError(
            "active_jobs",
            f"this API key has {active} fine-tune requests still running (the limit is "
            f"{settings.quota_active_jobs}); wait for one to finish",
            RETRY_JOBS_S,
        )


def stored_upload_bytes(session: Session, user_id: str, excluding_key: str | None = None) -> int:
    """Bytes of the key's uploads whose size is known (recorded at PUT or at submit)."""
    query = select(func.coalesce(func.sum(Upload.size), 0)).where(Upload.user_id == user_id)
    if excluding_key is not None:
        query = query.where(Upload.key != excluding_key)
    return int(session.scalar(query) or 0)


def check_new_upload(session: Session, settings: Settings, user_id: str) -> None:
    """QuotaExceededError when the key may not reserve one more upload slot."""
    used = exists().where(FineTuneJob.upload_id == Upload.id)
    pending = session.scalar(
        select(func.count()).select_from(Upload).where(Upload.user_id == user_id, ~used)
    ) or 0
    if pending >= settings.quota_pending_uploads:
        raise QuotaExceededError(
            "pending_uploads",
            f"this API key has {pending} upload slots not yet used by a submit (the limit is "
            f"{settings.quota_pending_uploads}); submit them, or wait for unused ones to expire",
            RETRY_UPLOADS_S,
        )
    stored = stored_upload_bytes(session, user_id)
    if stored >= settings.quota_upload_bytes:
        raise QuotaExceededError(
            "upload_bytes",
            f"this API key stores {format_bytes(stored)} of uploads (the limit is "
            f"{format_bytes(settings.quota_upload_bytes)})",
            RETRY_UPLOADS_S,
        )


def upload_bytes_left(session: Session, settings: Settings, user_id: str, key: str) -> int:
    """How many bytes the upload at `key` may still take under the key's `upload_bytes` quota."""
    return max(settings.quota_upload_bytes - stored_upload_bytes(session, user_id, excluding_key=key), 0)


def upload_over_quota(settings: Settings, left: int) -> QuotaExceededError:
    return QuotaExceededError(
        "upload_bytes",
        f"this upload would take the API key's stored uploads over "
        f"{format_bytes(settings.quota_upload_bytes)} ({format_bytes(left)} left)",
        RETRY_UPLOADS_S,
    )


class InFlightSlots:
    """Per-key count of requests of one kind in flight in this process, capped at `limit`."""

    def __init__(self, quota: str, limit: int, what: str, retry_after_s: int) -> None:
        self.quota, self.limit, self.what, self.retry_after_s = quota, limit, what, retry_after_s
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}

    @contextmanager
    def hold(self, user_id: str) -> Iterator[None]:
        """One slot for the block's duration; QuotaExceededError when all `limit` are taken."""
        with self._lock:
            held = self._held.get(user_id, 0)
            if held >= self.limit:
                raise QuotaExceededError(
                    self.quota, f"this API key has {held} {self.what} in flight (the limit is {self.limit})",
                    self.retry_after_s,
                )
            self._held[user_id] = held + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._held[user_id] - 1
                if left:
                    self._held[user_id] = left
                else:
                    del self._held[user_id]


def generation_slots(settings: Settings) -> InFlightSlots:
    """The `generations` quota: hold one slot around each /v1/{slug} generation."""
    return InFlightSlots("generations", settings.quota_generations, "image generations", RETRY_GENERATION_S)


def probe_slots(settings: Settings) -> InFlightSlots:
    """The `probes` quota: concurrent HEAD probes of foreign dataset URLs per key."""
    return InFlightSlots("probes", settings.quota_probes, "dataset URL probes", RETRY_PROBE_S)
