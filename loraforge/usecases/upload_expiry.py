"""Upload slots that no submit used expire: their row and their object are deleted.

A slot (GET /finetune/request/upload/pre-signed-url) holds a place under the key's
`pending_uploads` quota and maybe bytes in the store; once it is older than
LORAFORGE_UPLOAD_EXPIRY_S (default 24 h) and no job refers to it, `sweep` removes it. The API runs
`sweep` periodically (`run_periodically`, every quarter of the expiry, at most every
SWEEP_EVERY_MAX_S); several API processes sweeping at once is harmless, since one DELETE decides
which rows go and only the process that deleted a row deletes its object. The same sweep
records the size of uploads that arrived behind the API's back (S3 pre-signed PUTs) and deletes
those over the upload cap (`measure_pending`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from loraforge.config import Settings
from loraforge.db.models import FineTuneJob, Upload
from loraforge.storage.base import ObjectStore
from loraforge.timestamps import utcnow

logger = logging.getLogger(__name__)

SWEEP_EVERY_MAX_S = 600.0


def expired_before(settings: Settings, now: datetime | None = None) -> datetime:
    """Slots created before this instant (UTC) have expired."""
    return (now or utcnow()) - timedelta(seconds=settings.upload_expiry_s)


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


def measure_pending(sessions: Callable[[], Session], store: ObjectStore, settings: Settings) -> int:
    """Record the size of unused uploads that have none yet, deleting any over the upload cap.

    With S3 a client PUTs straight to the store, which cannot cap a pre-signed PUT's size: this
    is where such an upload is first seen, so the `upload_bytes` quota counts it and an oversized
    one is removed within a sweep rather than kept until its slot expires. Returns how many it
    deleted. The store is read holding no database session.
    """
    unused = ~exists().where(FineTuneJob.upload_id == Upload.id)
    with sessions() as session:
        keys = list(session.scalars(select(Upload.key).where(Upload.size.is_(None), unused)))
    sizes = {key: store.size(key) for key in keys}
    oversized = [key for key, size in sizes.items() if size is not None and size > settings.max_upload_bytes]
    for key in oversized:
        store.delete(key)
        logger.warning("deleted upload %s: %d bytes, over the %d-byte cap", key, sizes[key],
                       settings.max_upload_bytes)
    with sessions() as session:
        for key, size in sizes.items():
            if size is not None and key not in oversized:
                session.execute(update(Upload).where(Upload.key == key, Upload.size.is_(None)).values(size=size))
        session.commit()
    return len(oversized)


async def run_periodically(sessions: Callable[[], Session], store: ObjectStore, settings: Settings) -> None:
    """Sweep now and then forever (cancel the task to stop)."""
    every = min(settings.upload_expiry_s / 4, SWEEP_EVERY_MAX_S)
    while True:
        try:
            await asyncio.to_thread(sweep, sessions, store, settings)
            await asyncio.to_thread(measure_pending, sessions, store, settings)
        except Exception:
            logger.exception("the upload expiry sweep failed; retrying in %.0f s", every)
        await asyncio.sleep(every)
