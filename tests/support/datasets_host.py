"""Loopback dataset hosts for submit tests: one that serves a ZIP, one that trickles its headers.

`ZipHost` answers HEAD and GET for any path with a small ZIP (403 for paths with "forbidden", a
redirect carrying a token for paths with "redirect"). `TrickleHost` accepts connections
and sends one header line every `every_s` seconds without ever ending the head, the slow host of
the issue; `stop()` closes every connection it holds so blocked probes end.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.abuse_server import tiny_zip


class _ZipHandler(BaseHTTPRequestHandler):
    body = tiny_zip()

    def do_HEAD(self) -> None:
        if "forbidden" in self.path:
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if "redirect" in self.path:
            self.send_response(302)
            self.send_header("Location", "/ds.zip?token=tok-hidden")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()

    def do_GET(self) -> None:
        self.do_HEAD()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


class ZipHost:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _ZipHandler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TrickleHost:
    def __init__(self, every_s: float = 2.0) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.every_s = every_s
        self.stopped = threading.Event()
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            n = 0
            while not self.stopped.wait(self.every_s):
                conn.sendall(b"X-Slow-%d: yes\r\n" % n)
                n += 1
        except OSError:
            pass

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()
        for conn in self.connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
