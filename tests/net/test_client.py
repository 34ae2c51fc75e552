"""The guarded client against real loopback servers: pinning, proxies, redirect hops, deadlines."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from loraforge.errors import UnsafeURLError
from loraforge.net.client import GuardedClient, OutboundError


class Recorder(BaseHTTPRequestHandler):
    """Answers 200, or a redirect to the `to` query value, and records the Host header it saw."""

    seen: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Host", ""))
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.split("=", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def server() -> Iterator[tuple[int, list[str]]]:
    """An HTTP server bound on 127.0.0.1 only (127.0.0.2 on the same port refuses connections)."""
    handler = type("Handler", (Recorder,), {"seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1], handler.seen
    httpd.shutdown()
    httpd.server_close()


def _client(**kwargs: object) -> GuardedClient:
    values: dict = {"allow_private": True, "timeout_s": 5, "deadline_s": 10}
    values.update(kwargs)
    return GuardedClient(**values)


def test_the_client_connects_to_the_address_it_checked_not_a_second_answer(server) -> None:
    port, seen = server
    answers = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("127.0.0.2")]
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list:
        calls.append(host)
        return [answers[min(len(calls), 2) - 1]]  # 127.0.0.1 first, 127.0.0.2 ever after

    with _client(resolver=rebinding) as client, client.open("GET", f"http://rebind.test:{port}/x") as r:
        r.read()
    assert r.status_code == 200 and r.text == "ok"
    assert seen == [f"rebind.test:{port}"]  # the 127.0.0.1-only server got it, under the URL's name
    assert calls == ["rebind.test"]  # resolved once: the connect used the checked answer


def test_an_address_refused_by_the_guard_is_never_contacted(server) -> None:
    port, seen = server

    def to_metadata(host: str, port: int) -> list:
        return [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("169.254.170.2")]

    with _client(resolver=to_metadata) as client, pytest.raises(UnsafeURLError, match="cloud metadata"):
        client.send("GET", f"http://creds.test:{port}/")
    assert seen == []


def test_proxy_variables_are_ignored(server, monkeypatch) -> None:
    port, seen = server
    proxy_seen: list[str] = []
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), type("Proxy", (Recorder,), {"seen": proxy_seen}))
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.server_address[1]}")
    try:
        with _client() as client, client.open("GET", f"http://127.0.0.1:{port}/") as r:
            r.read()
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert r.status_code == 200 and seen and proxy_seen == []


def test_every_redirect_hop_passes_the_guard(server) -> None:
    port, seen = server
    url = f"http://127.0.0.1:{port}/redirect?to=http://169.254.169.254/latest/meta-data/"
    with _client() as client:
        with pytest.raises(UnsafeURLError, match="cloud metadata"), client.open("GET", url, follow_redirects=True):
            pass
        with client.open("GET", url) as r:  # not following: the 302 comes back as it is
            assert r.status_code == 302
    assert len(seen) == 2


def test_a_server_trickling_its_answer_is_cut_off_at_the_deadline() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.wait(0.1):  # one header byte per 0.1 s: each read is quick, the whole is not
                try:
                    conn.sendall(b"X")
                except OSError:
                    return

    threading.Thread(target=trickle, daemon=True).start()
    started = time.monotonic()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        with _client(timeout_s=1, deadline_s=1.5) as client, pytest.raises(OutboundError, match="within 1.5 s"), \
                client.open("GET", url):
            pass
    finally:
        stop.set()
        listener.close()
    assert time.monotonic() - started < 5
