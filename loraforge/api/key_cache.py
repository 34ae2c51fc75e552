"""The API process's cache of known API keys, dropped the moment any key is revoked.

Auth is one sha256 plus one indexed lookup; on PostgreSQL the cache spares the hot read endpoints
that round trip for KEY_CACHE_SECONDS. `loraforge keys revoke` commits with a NOTIFY on
`accounts.KEY_CHANGES_CHANNEL`; each API process listens (loraforge.db.notify) and clears its
cache on every message, so a revoked key is refused at once. The cache is used only while that
listener is connected; on SQLite (one machine, an in-process lookup) it is not used at all.
"""

from __future__ import annotations

import time

from loraforge.db.accounts import KEY_CHANGES_CHANNEL
from loraforge.db.notify import ChangeListener

KEY_CACHE_SECONDS = 30.0
KEY_CACHE_MAX = 10_000


class KeyCache:
    """sha256 of a key -> user id, for keys known to exist; only valid keys are cached."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, float]] = {}
        self._listener: ChangeListener | None = None

    def start(self, database_url: str) -> None:
        self._listener = ChangeListener(database_url, KEY_CHANGES_CHANNEL, self.clear).start()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()

    @property
    def enabled(self) -> bool:
        return self._listener is not None and self._listener.listening

    def get(self, digest: str) -> str | None:
        if not self.enabled:
            return None
        hit = self._entries.get(digest)
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def put(self, digest: str, user_id: str) -> None:
        if not self.enabled:
            return
        if len(self._entries) >= KEY_CACHE_MAX:
            self._entries.clear()
        self._entries[digest] = (user_id, time.monotonic() + KEY_CACHE_SECONDS)

    def discard(self, digest: str) -> None:
        self._entries.pop(digest, None)

    def clear(self) -> None:
        self._entries = {}
