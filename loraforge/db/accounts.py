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

from sqlalchemy import select
from sqlalchemy.orm import Session

from loraforge.db.models import ApiKey, User

logger = logging.getLogger(__name__)

KEY_PREFIX = "lf_"


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
    """The id of the user owning `key`, or None when the key is unknown or revoked."""
    return session.scalar(
        select(ApiKey.user_id).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked.is_(False))
    )


def count_keys(session: Session) -> int:
    from sqlalchemy import func

    return int(session.scalar(select(func.count()).select_from(ApiKey)) or 0)
