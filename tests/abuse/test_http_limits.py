"""The HTTP limits of a real `loraforge serve`, attacked with raw sockets on loopback.

Header size and count caps answer 431, the header and body deadlines 408, the connection cap 503
with Retry-After; while hundreds of half-sent requests are open, /healthz and another key's list
still answer within a second, and the server's memory barely moves.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.abuse_server import Served, raw_connect, read_status, serving

MIB = 1024 * 1024
HEADER_TIMEOUT_S = 3
MAX_CONNECTIONS = 450
HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serving(tmp_path_factory.mktemp("limits"), LORAFORGE_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
                          LORAFORGE_BODY_TIMEOUT_S="3", LORAFORGE_MAX_CONNECTIONS=str(MAX_CONNECTIONS))


def _send_until_refused(sock: socket.socket, chunks: Iterator[bytes]) -> int:
    """Send chunks until the server stops taking them; returns the bytes it accepted."""
    sent = 0
    try:
        for chunk in chunks:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:  # reset, broken pipe, timeout: the server stopped reading
        pass
    return sent


def _quick(served: Served) -> float:
    """Seconds for /healthz plus another key's list, each on a fresh connection."""
    started = time.monotonic()
    assert httpx.get(f"{served.url}/healthz", timeout=5).status_code == 200
    with served.client(served.other_key, timeout=5) as http:
        assert http.get("/finetune/request/list").status_code == 200
    return time.monotonic() - started


def test_a_header_line_that_never_ends_is_cut_off_with_a_431(served: Served) -> None:
    before = served.rss_bytes()
    with raw_connect(served) as sock:
        sock.sendall(HEAD + b"X-Endless: ")
        endless = (b"a" * (64 * 1024) for _ in range(1024))  # up to 64 MiB, 64 KiB at a time
        sent = _send_until_refused(sock, endless)
        status = read_status(sock)
    print("endless header: status", status, "after", sent, "bytes")
    assert status in (431, None)
    assert sent < 16 * MIB, f"the server read {sent} bytes of one header line"
    assert served.rss_bytes() - before < 20 * MIB


@pytest.mark.parametrize("head", [
    HEAD + b"X-Big: " + b"b" * MIB + b"\r\n\r\n",
    HEAD + b"".join(b"X-%d: v\r\n" % n for n in range(20_000)) + b"\r\n",
    HEAD + b"".join(b"X-%d: v\r\n" % n for n in range(120)) + b"\r\n",  # small, but too many
], ids=["1MB-header", "20000-headers", "120-headers"])
def test_oversized_or_too_many_headers_are_a_431(served: Served, head: bytes) -> None:
    with raw_connect(served) as sock:
        _send_until_refused(sock, iter([head]))
        status = read_status(sock)
    assert status == 431


def test_a_body_that_stalls_gets_a_408(served: Served) -> None:
    with raw_connect(served) as sock:
        sock.sendall(b"POST /finetune/request/submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"x-api-key: " + served.key.encode() + b"\r\nContent-Length: 1000\r\n\r\n{\"name\"")
        started = time.monotonic()
        assert read_status(sock) == 408
        assert time.monotonic() - started < 10


def test_hundreds_of_half_sent_requests_time_out_and_never_slow_other_clients(served: Served) -> None:
    before = served.rss_bytes()
    sockets = []
    try:
        for n in range(400):
            sock = raw_connect(served)
            sock.sendall(HEAD + b"X-Slow-%d: " % n + b"s" * 8 * 1024)
            sockets.append(sock)
        grown = served.rss_bytes() - before
        slowest = max(_quick(served) for _ in range(5))
        assert slowest < 1.0, f"/healthz + list took {slowest:.2f} s during the flood"
        assert grown < 50 * MIB, f"400 half-sent requests grew the server by {grown / MIB:.1f} MiB"
        time.sleep(HEADER_TIMEOUT_S + 1)
        statuses = []
        for sock in sockets:
            sock.settimeout(5)
            statuses.append(read_status(sock))
        assert set(statuses) <= {408, None} and statuses.count(408) > 350, statuses[:20]
    finally:
        for sock in sockets:
            sock.close()


def test_fifty_large_half_sent_requests_grow_the_server_by_under_50_mib(served: Served) -> None:
    before = served.rss_bytes()
    sockets = []
    try:
        for n in range(50):
            sock = raw_connect(served, timeout=2)
            sock.sendall(HEAD + b"X-Big-%d: " % n)
            _send_until_refused(sock, (b"c" * (64 * 1024) for _ in range(64)))  # 4 MiB each, if taken
            sockets.append(sock)
        grown = served.rss_bytes() - before
        assert grown < 50 * MIB, f"50 half-sent requests grew the server by {grown / MIB:.1f} MiB"
        assert _quick(served) < 1.0
    finally:
        for sock in sockets:
            sock.close()


def test_connections_over_the_cap_get_a_503_with_retry_after(served: Served) -> None:
    sockets = []
    try:
        for _ in range(MAX_CONNECTIONS + 20):
            sockets.append(raw_connect(served))
        time.sleep(0.5)
        sockets[-1].sendall(HEAD + b"\r\n")
        answer = sockets[-1].recv(4096)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b"retry-after: " in answer.lower() and b'"error"' in answer
    finally:
        for sock in sockets:
            sock.close()
    time.sleep(0.5)
    assert _quick(served) < 1.0, "the server must recover once the connections are gone"
