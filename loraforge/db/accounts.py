"""Users and their API keys: create a key (returned once, stored as sha256), find a key's user.

A key is `lf_` plus 32 random bytes in URL-safe base64, so one sha256 is a safe and cheap hash:
there is nothing to brute-force that a slow KDF would protect, and the auth check on every request
stays one indexed lookup.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from loraforge.db.models import ApiKey, User
from loraforge.errors import NotFoundError, ValidationError
from loraforge.timestamps import utcnow

logger = logging.getLogger(__name__)

KEY_PREFIX = "lf_"
# last_used_ts is written only when older than this, so a busy key costs no write per request.
KEY_USE_RESOLUTION_S = 60.0
# PostgreSQL NOTIFY channel: every API process drops its key cache when a key is revoked.
KEY_CHANGES_CHANNEL = "loraforge_keys"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key_string() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_user_with_key(session: Session, name: str, key: str | None = None) -> tuple[User, str]:
    """Create a user named `name` holding one key (`key`, or a fresh random one); returns both.

    Commits. If `key` is given and already exists, its user is returned unchanged, so
    LORAFORGE_API_KEY can be applied at every start.
    """
    key = key or new_key_string()
    existing = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if existing is not None:
        user = session.get(User, existing.user_id)
        assert user is not None
        return user, key
    user = User(id=str(uuid.uuid4()), name=name)
    session.add(user)
    session.flush()
    session.add(
        ApiKey(id=str(uuid.uuid4()), user_id=user.id, name=name, key_hash=hash_key(key), prefix=key[:8])
    )
    session.commit()
    logger.info("created user %s with key %s...", user.id, key[:8])
    return user, key


def user_id_for_key(session: Session, key: str) -> str | None:
    """The id of the user owning `key`, or None when the key is unknown or revoked.

    Records the use (`last_used_ts`) when the last record is over KEY_USE_RESOLUTION_S old; a
    database too busy for that write does not fail the request.
    """
    row = session.execute(
        select(ApiKey.id, ApiKey.user_id, ApiKey.last_used_ts).where(
            ApiKey.key_hash == hash_key(key), ApiKey.revoked.is_(False)
        )
    ).first()
    if row is None:
        return None
    now = utcnow()
    if row.last_used_ts is None or now - row.last_used_ts > timedelta(seconds=KEY_USE_RESOLUTION_S):
        try:
            session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_ts=now))
            session.commit()
        except OperationalError as exc:
            session.rollback()
            logger.debug("could not record the use of key %s...: %s", key[:8], exc)
    return str(row.user_id)


@dataclass(frozen=True)
class KeyInfo:
    """What `loraforge keys list` shows of a key: never the key, only its first characters."""

    name: str
    prefix: str
    created_ts: datetime
    last_used_ts: datetime | None
    revoked_ts: datetime | None


def list_keys(session: Session, include_revoked: bool = False) -> list[KeyInfo]:
    """Every key, oldest first; revoked ones only when asked."""
    query = select(ApiKey).order_by(ApiKey.created_ts, ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked.is_(False))
    return [
        KeyInfo(k.name, k.prefix, k.created_ts, k.last_used_ts, k.revoked_ts if k.revoked else None)
        for k in session.scalars(query)
    ]


def active_key_named(session: Session, name: str) -> bool:
    return session.scalar(
        select(ApiKey.id).where(ApiKey.name == name, ApiKey.revoked.is_(False)).limit(1)
    ) is not None


def revoke_key(session: Session, name_or_prefix: str) -> list[str]:
    """Revoke the active key named `name_or_prefix`, or that key itself, or the one starting with it.

    Returns the revoked keys' prefixes. Commits; on PostgreSQL the commit also notifies every API
    process (KEY_CHANGES_CHANNEL) to drop its key cache, so the key is refused at once.
    Raises NotFoundError when nothing matches and ValidationError when a name is ambiguous.
    """
    active = ApiKey.revoked.is_(False)
    keys = list(session.scalars(select(ApiKey).where(active, ApiKey.name == name_or_prefix)))
    if not keys and name_or_prefix.startswith(KEY_PREFIX):  # the whole key
        keys = list(session.scalars(select(ApiKey).where(active, ApiKey.key_hash == hash_key(name_or_prefix))))
    if not keys and name_or_prefix.startswith(KEY_PREFIX) and len(name_or_prefix) >= 6:
        keys = list(session.scalars(select(ApiKey).where(active, ApiKey.prefix.startswith(name_or_prefix))))
    if not keys:
        raise NotFoundError(
            f"no active key named {name_or_prefix!r}; `loraforge keys list` shows the names"
        )
    if len(keys) > 1:
        shown = ", ".join(k.prefix for k in keys)
        raise ValidationError(
            f"{len(keys)} active keys are named {name_or_prefix!r} ({shown}): revoke one by its prefix"
        )
    now = utcnow()
    for key in keys:
        key.revoked, key.revoked_ts = True, now
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {KEY_CHANGES_CHANNEL}"))  # delivered at commit
    session.commit()
    return [k.prefix for k in keys]

