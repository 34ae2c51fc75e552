"""A real `loraforge serve` subprocess on loopback for the abuse tests, with two keys and raw sockets.

`start_server(tmp, **env)` migrates a fresh PostgreSQL database, starts the server with the
embedded worker off (jobs stay where the API put them), creates a second user with
`loraforge keys create`, and returns a `Served` that knows both keys, the server's pid (for its
RSS) and how to stop it. `raw_connect` opens a plain TCP socket for the header and slow-client
attacks, which no HTTP client library would send.
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from loraforge.db.accounts import create_user_with_key
from loraforge.db.base import make_engine, make_sessionmaker
from tests.fixtures.databases import create_postgres_database, drop_postgres_database
from tests.support.serving import REPO, free_port, loraforge_env, stop, wait_healthy

OWNER_KEY = "abuse-owner-key-0123456789"


@dataclass
class Served:
    url: str
    port: int
    key: str
    other_key: str
    process: subprocess.Popen[bytes]
    log: Path
    database_url: str
    env: dict[str, str] = field(default_factory=dict)

    def client(self, key: str | None = None, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"x-api-key": key or self.key}, timeout=timeout)

    def rss_bytes(self) -> int:
        """The server process's resident set size, from /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS for the server process")

    def stop(self) -> None:
        stop(self.process)
        drop_postgres_database(self.database_url)

    def new_key(self, name: str = "tester") -> str:
        """A new user's key, written to the server's database (as `loraforge keys create` does)."""
        engine = make_engine(self.database_url)
        try:
            with make_sessionmaker(engine)() as session:
                return create_user_with_key(session, name)[1]
        finally:
            engine.dispose()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _env(tmp: Path, database_url: str, extra: dict[str, str]) -> dict[str, str]:
    return loraforge_env(
        LORAFORGE_DATA_DIR=str(tmp / "data"),
        LORAFORGE_DATABASE_URL=database_url,
        LORAFORGE_SECRET_KEY="abuse-test-secret-0123456789",
        LORAFORGE_API_KEY=OWNER_KEY,
        LORAFORGE_EMBEDDED_WORKER="false",
        LORAFORGE_ALLOW_PRIVATE_URLS="true",
        **extra,
    )


def start_server(tmp: Path, access_log: bool = False, **extra: str) -> Served:
    database_url = create_postgres_database()
    env = _env(tmp, database_url, extra)
    other = subprocess.run([sys.executable, "-m", "loraforge", "keys", "create", "--name", "other", "--init"],
                           env=env, capture_output=True, text=True, timeout=120, check=True).stdout.strip()
    port = free_port()
    log = tmp / f"serve-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "loraforge", "serve", "--port", str(port), *([] if access_log else ["--no-access-log"])],
        env=env, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    served = Served(f"http://127.0.0.1:{port}", port, OWNER_KEY, other, process, log, database_url, env)
    try:
        wait_healthy(served.url, process, 90, lambda: served.log_text()[-3000:])
    except AssertionError:
        served.stop()
        raise
    return served


def serving(tmp: Path, access_log: bool = False, **extra: str) -> Iterator[Served]:
    """`start_server`, stopped when the generator closes: the body of a module fixture."""
    server = start_server(tmp, access_log, **extra)
    try:
        yield server
    finally:
        server.stop()


def raw_connect(served: Served, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=timeout)
    return sock


def read_status(sock: socket.socket) -> int | None:
    """The status code of the answer on `sock`, or None when the server closed without one."""
    data = b""
    while b"\r\n" not in data:
        try:
            chunk = sock.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            return None
        if not chunk:
            return None
        data += chunk
    return int(data.split(b" ", 2)[1])


def tiny_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("a.txt", (2024, 1, 1, 0, 0, 0)), b"hello")
    return buffer.getvalue()
