"""Probes of what a loraforge process depends on: the database, the object store, the broker.

Each probe returns None when the dependency answers, else one line saying what is wrong; none
raises. `/readyz` runs the read-only ones on every call; `loraforge doctor` and the start checks of
`serve` and `worker` also write to the store (`probe_storage(store, write=True)`).
"""

from __future__ import annotations

import uuid

from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from loraforge.errors import LoraforgeError
from loraforge.storage.base import ObjectStore

PROBE_PREFIX = "health/"
BROKER_TIMEOUT_S = 3.0


def _reason(exc: BaseException) -> str:
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {detail[0] if detail else ''}".rstrip(": ")


def probe_database(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return f"database unreachable ({_reason(exc)})"
    return None


def probe_storage(store: ObjectStore, write: bool = False) -> str | None:
    """A listing (and with `write`, a put, read back and delete of a small probe object)."""
    try:
        store.list(PROBE_PREFIX)
        if write:
            key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
            store.put_bytes(key, b"ok")
            try:
                if store.get_bytes(key) != b"ok":
                    return "storage returned different bytes than were written"
            finally:
                store.delete(key)
    except (OSError, LoraforgeError, BotoCoreError, ClientError) as exc:  # permissions, a full disk, S3
        return f"storage {'not writable' if write else 'unreachable'} ({_reason(exc)})"
    return None


def probe_broker(url: str) -> str | None:
    """Connect to the Celery broker (Redis or RabbitMQ) and disconnect; '' URL means no broker."""
    if not url:
        return None
    from kombu import Connection
    from kombu.exceptions import KombuError

    try:
        with Connection(url, connect_timeout=BROKER_TIMEOUT_S) as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)  # type: ignore[arg-type]  # kombu takes a float; its stubs say int
    except (OSError, KombuError) as exc:
        return f"broker unreachable ({_reason(exc)})"
    return None
