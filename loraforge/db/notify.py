"""Listen to a PostgreSQL NOTIFY channel on a thread of its own and call back on each message.

`ChangeListener(url, channel, on_change)` keeps one dedicated psycopg connection in LISTEN mode
and calls `on_change()` for every notification, and also whenever the connection is (re)made,
since notifications sent while it was down are lost. `listening` says whether it is connected
now: a cache it invalidates must not be trusted while it is False. Only PostgreSQL has NOTIFY;
for other URLs nothing is started and `listening` stays False.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.engine import make_url

logger = logging.getLogger(__name__)

RECONNECT_DELAY_S = 2.0


class ChangeListener:
    def __init__(self, url: str, channel: str, on_change: Callable[[], None]) -> None:
        self._url = url
        self._channel = channel
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = False

    def start(self) -> ChangeListener:
        parsed = make_url(self._url)
        if parsed.get_backend_name() != "postgresql":
            return self
        self._dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        self._thread = threading.Thread(target=self._run, name=f"listen-{self._channel}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {self._channel}")
                    self.listening = True
                    self._on_change()  # whatever happened while we were not listening
                    while not self._stop.is_set():
                        for _note in conn.notifies(timeout=1.0, stop_after=1):
                            self._on_change()
            except psycopg.Error as exc:
                logger.warning("lost the database's %s notifications (%s); retrying", self._channel, exc)
            finally:
                self.listening = False
                self._on_change()
            self._stop.wait(RECONNECT_DELAY_S)
