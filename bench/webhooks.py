"""Outbox drain benchmark: how fast one dispatcher delivers a backlog, by database and fan-out.

Seeds a fresh database (SQLite file and PostgreSQL) with MESSAGES pending webhook messages spread
over 1 webhook, then over `--hooks` webhooks (one per user), and times one OutboxDispatcher (the
code the API and workers run) draining each backlog to a loopback receiver answering 204. One
webhook is served by one sender at a time (so a slow receiver cannot take the pool); the fan-out
ratio shows what the pool gives when many receivers wait. Figures are ratios within the same run
(per database: many hooks / one hook; per layout: PostgreSQL / SQLite), so they travel across
machines. Run by hand:

    .venv/bin/python bench/webhooks.py [--messages 1000] [--hooks 16] [--senders 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from loraforge.config import load_settings
from loraforge.db.accounts import create_user_with_key
from loraforge.db.base import make_engine, make_sessionmaker
from loraforge.db.migrate import upgrade
from loraforge.db.webhook_models import Webhook, WebhookMessage
from loraforge.jobstate.outbox import new_message_id, test_payload
from loraforge.webhooks import outbox
from loraforge.webhooks.dispatcher import OutboxDispatcher
from tests.fixtures.databases import create_postgres_database, drop_postgres_database


class Accept(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def drain_rate(url: str, receiver: str, messages: int, hooks: int, senders: int) -> float:
    """Messages per second that one dispatcher delivers from a backlog of `messages` over `hooks`."""
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        ids = []
        for i in range(hooks):
            user, _ = create_user_with_key(session, f"bench-{i}")
            hook = Webhook(id=f"hook-{i:04d}-{time.monotonic_ns()}", user_id=user.id, url=receiver,
                           secret="whsec_" + "A" * 43 + "=", event_types=["TEST"], active=True)
            session.add(hook)
            ids.append(hook.id)
        session.commit()
        now = time.time()
        session.add_all(
            WebhookMessage(message_id=new_message_id(), webhook_id=ids[n % hooks], job_id=None,
                           event_type="TEST", payload=test_payload(), state=outbox.PENDING, attempts=0,
                           next_attempt_at=now)
            for n in range(messages)
        )
        session.commit()
    settings = load_settings(allow_private_urls=True, webhook_senders=senders, webhook_poll_s=0.05,
                             database_url=url)
    dispatcher = OutboxDispatcher(sessions, settings)
    started = time.monotonic()
    dispatcher.start()
    try:
        while True:
            with sessions() as session:
                left = session.query(WebhookMessage).filter(WebhookMessage.state == outbox.PENDING).count()
            if left == 0:
                break
            time.sleep(0.05)
    finally:
        dispatcher.stop()
        engine.dispose()
    return messages / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--hooks", type=int, default=16)
    parser.add_argument("--senders", type=int, default=8)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver = f"http://127.0.0.1:{server.server_address[1]}/hook"
    rates: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("sqlite", "postgresql"):
            for hooks in (1, args.hooks):
                if kind == "sqlite":
                    url = f"sqlite:///{Path(tmp) / f'bench-{hooks}.db'}"
                else:
                    url = create_postgres_database()
                try:
                    rates[kind, hooks] = drain_rate(url, receiver, args.messages, hooks, args.senders)
                finally:
                    if kind == "postgresql":
                        drop_postgres_database(url)
                print(f"{kind:10s} {hooks:3d} webhook(s): {rates[kind, hooks]:7.1f} messages/s")
    server.shutdown()
    for kind in ("sqlite", "postgresql"):
        print(f"{kind}: {args.hooks} webhooks / 1 webhook = {rates[kind, args.hooks] / rates[kind, 1]:.2f}x")
    for hooks in (1, args.hooks):
        print(f"{hooks} webhook(s): postgresql / sqlite = {rates['postgresql', hooks] / rates['sqlite', hooks]:.2f}x")


if __name__ == "__main__":
    main()
