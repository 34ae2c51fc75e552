"""Upload slots that no submit used expire: their row and their object are deleted.

A slot (GET /finetune/request/upload/pre-signed-url) holds a place under the key's
`pending_uploads` quota and maybe bytes in the store; once it is older than
LORAFORGE_UPLOAD_EXPIRY_S (default 24 h) and no job refers to it, `sweep` removes it. The API runs
`sweep` periodically (`run_periodically`, every quarter of the expiry, at most every
SWEEP_EVERY_MAX_S); several API processes sweeping at once is harmless, since one DELETE decides
which rows go and only the process that deleted a row deletes its object.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, exists
from sqlalchemy.orm import Session

from loraforge.config import Settings
from loraforge.db.models import FineTuneJob, Upload
from loraforge.storage.base import ObjectStore

logger = logging.getLogger(__name__)

SWEEP_EVERY_MAX_S = 600.0


def expired_before(settings: Settings, now: datetime | None = None) -> datetime:
    """Slots created before this instant (UTC) have expired."""
    return (now or datetime.now(UTC)) - timedelta(seconds=settings.upload_expiry_s)


def sweep(sessions: Callable[[], Session], store: ObjectStore, settings: Settings) -> int:
    """Delete expired, never-submitted upload slots and their objects; returns how many."""
    unused = ~exists().where(FineTuneJob.upload_id == Upload.id)
    with sessions() as session:
        statement = (delete(Upload).where(Upload.created_ts < expired_before(settings), unused)
                     .returning(Upload.key))
        keys = list(session.scalars(statement))
        session.commit()
    for key in keys:
        try:
            store.delete(key)
        except Exception:  # the row is gone; a stray object must not stop the sweep
            logger.exception("could not delete the expired upload %s from the store", key)
    if keys:
        logger.info("deleted %d expired upload slots that were never submitted", len(keys))
    return len(keys)


async def run_periodically(sessions: Callable[[], Session], store: ObjectStore, settings: Settings) -> None:
    """Sweep now and then forever (cancel the task to stop)."""
    every = min(settings.upload_expiry_s / 4, SWEEP_EVERY_MAX_S)
    while True:
        try:
            await asyncio.to_thread(sweep, sessions, store, settings)
        except Exception:
            logger.exception("the upload expiry sweep failed; retrying in %.0f s", every)
        await asyncio.sleep(every)
