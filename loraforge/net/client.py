"""GuardedClient: outbound HTTP to user-given URLs, pinned to guard-checked addresses.

Each request resolves the URL's host once (through the guard's `Resolver`), refuses it unless
every address passes the SSRF guard, and then connects to one of those very addresses: the URL is
rewritten to the IP literal while the original host stays in the Host header and in TLS SNI, and
the certificate is verified against that host name. A later DNS answer, whatever it says, is
never consulted. Proxy variables from the environment are ignored (a proxy would connect on our
behalf to an unchecked address); redirects are followed only when asked, and each hop is checked
again; the URL the last hop asked for is the response's `final_url(response)`, for messages that
must name where the answer came from. Every exchange has a total deadline: a watchdog shuts the socket down when it passes, so a
server that trickles bytes cannot hold a thread longer than that.
"""

from __future__ import annotations

import functools
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Self
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from loraforge.errors import LoraforgeError
from loraforge.net.guard import Resolver, resolve_safe, system_resolve

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
FINAL_URL = "loraforge.final_url"  # the response extension holding the URL of the last hop


def final_url(response: httpx.Response, default: str) -> str:
    """The URL `GuardedClient.open` reached after its redirects (the request's own URL is pinned to an
    IP address); `default` for a response that did not come through `open`."""
    return str(response.extensions.get(FINAL_URL, default))


@functools.cache
def default_tls() -> ssl.SSLContext:
    """The verifying TLS context (certifi's CAs, as httpx's default), built once per process.

    Building it loads the CA bundle, which costs about as much as a whole loopback request;
    a client per request would pay it every time.
    """
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class OutboundError(LoraforgeError):
    """A user-given URL could not be reached: no address answered, TLS failed, or the deadline passed."""


class TooManyRedirects(OutboundError):
    """A followed chain of redirects was longer than the limit."""


class _Watchdog:
    """Shuts down the sockets of one exchange once its deadline passes (wakes any blocked read)."""

    def __init__(self, deadline_s: float) -> None:
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.expired = False
        self._timer = threading.Timer(deadline_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            sock = info["return_value"].get_extra_info("socket")
            with self._lock:
                if sock is not None:
                    self._sockets.append(sock)
                if self.expired:
                    self._shutdown()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shutdown()

    def _shutdown(self) -> None:
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed

    def cancel(self) -> None:
        self._timer.cancel()


class GuardedClient:
    """An httpx client for URLs users hand us; close it (or use it as a context manager).

    `timeout_s` bounds each connect and each read; `deadline_s` bounds one whole exchange, from
    the first connect to the end of the body, redirects included. Connections are not kept alive,
    so each request proves its address anew.
    """

    def __init__(self, *, allow_private: bool, timeout_s: float, deadline_s: float,
                 resolver: Resolver = system_resolve, headers: Mapping[str, str] | None = None,
                 verify: ssl.SSLContext | None = None) -> None:
        self.allow_private = allow_private
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self._resolver = resolver
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False,
                                  trust_env=False, headers=dict(headers or {}), verify=verify or default_tls(),
                                  limits=httpx.Limits(max_keepalive_connections=0))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, method: str, url: str, *, content: bytes | None = None,
             headers: Mapping[str, str] | None = None, trace: Any = None) -> httpx.Response:
        """One request to an address of `url`'s host that passed the guard (tried in order).

        The response is streamed: read or close it. Raises UnsafeURLError (the guard refused),
        OutboundError (no address could be reached; TLS failures say so) or httpx errors
        (timeouts, protocol errors) raised after the connection was made.
        """
        host, port, addresses = resolve_safe(url, self.allow_private, self._resolver)
        parts = urlsplit(url)
        userinfo, _, host_header = parts.netloc.rpartition("@")
        last_error: httpx.ConnectError | None = None
        for address in addresses:
            literal = f"[{address}]" if address.version == 6 else str(address)
            netloc = f"{userinfo}@{literal}:{port}" if userinfo else f"{literal}:{port}"
            pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
            extensions: dict[str, Any] = {"sni_hostname": host} if parts.scheme == "https" else {}
            if trace is not None:
                extensions["trace"] = trace
            request = self._http.build_request(method, pinned, content=content,
                                               headers={**(headers or {}), "Host": host_header},
                                               extensions=extensions)
            try:
                return self._http.send(request, stream=True)
            except httpx.ConnectError as exc:
                last_error = exc
        if "CERTIFICATE_VERIFY_FAILED" in str(last_error):
            raise OutboundError(f"the TLS certificate of {host} could not be verified for {url}: {last_error}")
        raise OutboundError(f"could not connect to {host} for {url}: {last_error}")

    @contextmanager
    def open(self, method: str, url: str, *, follow_redirects: bool = False,
             max_redirects: int = MAX_REDIRECTS, content: bytes | None = None,
             headers: Mapping[str, str] | None = None) -> Iterator[httpx.Response]:
        """The response to `url` within the deadline, closed on exit.

        With `follow_redirects`, each hop's Location passes the guard again before it is
        contacted, up to `max_redirects` (then TooManyRedirects). Without it, a 3xx is returned
        as it is. Raises OutboundError when the deadline passes, besides what `send` raises.
        """
        watchdog = _Watchdog(self.deadline_s)
        started = time.monotonic()
        current = url
        try:
            for _hop in range(max_redirects + 1):
                response = self.send(method, current, content=content, headers=headers, trace=watchdog.trace)
                if not (follow_redirects and response.is_redirect):
                    break
                response.close()
                target = urljoin(current, response.headers["location"])
                logger.info("%s redirected to %s", current, target)
                current = target
            else:
                raise TooManyRedirects(f"{url} redirected more than {max_redirects} times; give the final URL")
            response.extensions[FINAL_URL] = current
            try:
                yield response
            finally:
                response.close()
        except (httpx.TransportError, OSError):
            if watchdog.expired or time.monotonic() - started >= self.deadline_s:
                raise OutboundError(f"{url} did not finish within {self.deadline_s:g} s") from None
            raise
        finally:
            watchdog.cancel()
