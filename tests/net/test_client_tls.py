"""HTTPS fetches stay verified when the connection is pinned to the guard-checked address.

The guarded client connects to an IP address but must still send the URL's host name in TLS SNI and
verify the certificate against it; a loopback HTTPS server with a certificate for `localhost`,
signed by a throwaway CA made here with the openssl CLI, proves both.
"""

from __future__ import annotations

import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loraforge.net.client import GuardedClient, OutboundError


class EchoHost(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = self.headers.get("Host", "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def tls_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    pki = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=loraforge test CA", cwd=pki)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "host.key", "-out", "host.csr",
             "-subj", "/CN=localhost", cwd=pki)
    (pki / "san.ext").write_text("subjectAltName=DNS:localhost\n")
    _openssl("x509", "-req", "-in", "host.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "host.pem", "-days", "2", "-extfile", "san.ext", cwd=pki)
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHost)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "host.pem", pki / "host.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], pki / "ca.pem"
    server.shutdown()
    server.server_close()


def test_a_pinned_https_fetch_verifies_the_certificate_for_the_host_name(tls_host: tuple[int, Path]) -> None:
    port, ca = tls_host
    verify = ssl.create_default_context(cafile=str(ca))
    with GuardedClient(allow_private=True, timeout_s=10, deadline_s=20, verify=verify) as client, \
            client.open("GET", f"https://localhost:{port}/") as response:
        response.read()
    assert response.status_code == 200
    assert response.text == f"localhost:{port}"


def test_a_certificate_from_an_unknown_authority_is_refused(tls_host: tuple[int, Path]) -> None:
    port, _ca = tls_host
    with GuardedClient(allow_private=True, timeout_s=10, deadline_s=20) as client, pytest.raises(
        OutboundError, match="TLS certificate of localhost could not be verified"
    ):
        client.send("GET", f"https://localhost:{port}/")
