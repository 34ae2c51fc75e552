"""Connection-level limits of `loraforge serve`: header size and count, header and body deadlines,
and a cap on open connections, enforced in uvicorn's httptools protocol before the app sees a byte.

uvicorn has no header-size limit with httptools (llhttp buffers a header line for as long as it
grows: 60-120 MiB per connection were measured) and no deadline for receiving a request; its
`limit_concurrency` only answers 503 once a request's headers are complete, so connections that
never finish their headers are not counted against it. `LimitedHttpToolsProtocol` adds, per
connection:

- a header-bytes cap and a header-count cap -> 431 Request Header Fields Too Large;
- a deadline for the whole request head, from the connection's start (or the request's first
  byte on a kept-alive connection) -> 408 Request Timeout;
- a body deadline: the body may stall for at most `body_timeout_s`, and must arrive at
  MIN_BODY_RATE_BYTES_S on average after that first grace period (a 100 MB upload gets
  `body_timeout_s` + 100 MB / MIN_BODY_RATE_BYTES_S) -> 408;
- a cap on open connections: an excess connection is answered 503 with Retry-After at once,
  without reading it.

Deadlines are checked by one sweep per server every SWEEP_EVERY_S (so they hold to within a
second), not by a timer per request: the limits add a few µs of CPU to a request, about 1% of a
GET /healthz through the app (bench/api_load.py --limits both).

Answers carry a JSON `{"error": ...}`; after one, the connection is half-closed and its input
discarded (LINGER_S, LINGER_BYTES at most) so the client reads the answer instead of a reset
(nginx's lingering close). `uvicorn_options(settings)` gives the keyword arguments `uvicorn.run` needs; the
protocol is passed as a picklable `functools.partial`, so `--workers N` gets it in every process.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from loraforge.config import Settings

logger = logging.getLogger(__name__)

# Slowest average body rate accepted once the first body_timeout_s has passed (bytes/s):
# 16 KiB/s is a poor mobile uplink; a client slower than that holds a connection for nothing.
MIN_BODY_RATE_BYTES_S = 16 * 1024
LINGER_S = 2.0
LINGER_BYTES = 256 * 1024
SWEEP_EVERY_S = 1.0  # deadlines are checked this often: they hold to within a second
RETRY_AFTER_S = 5


@dataclass(frozen=True)
class HttpLimits:
    """The per-connection limits (bytes, counts, seconds) LimitedHttpToolsProtocol enforces."""

    max_header_bytes: int
    max_headers: int
    header_timeout_s: float
    body_timeout_s: float
    max_body_bytes: int
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(settings.max_header_bytes, settings.max_headers, settings.header_timeout_s,
                   settings.body_timeout_s, max(settings.max_upload_bytes, settings.max_request_bytes),
                   settings.max_connections)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


_HEAD, _BODY, _IDLE = 0, 1, 2  # where a connection is: reading a head, reading a body, between requests


def _sweep(loop: asyncio.AbstractEventLoop, state: Any) -> None:
    """Check every connection's deadline once a second; one timer per server, none per request."""
    now = loop.time()
    for connection in list(state.connections):
        check = getattr(connection, "_check_deadline", None)
        if check is not None:
            check(now)
    if state.connections:
        loop.call_later(SWEEP_EVERY_S, _sweep, loop, state)
    else:
        state.loraforge_sweeping = False


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of `HttpLimits` (see the module docstring)."""

    def __init__(self, *args: Any, limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._phase = _HEAD
        self._head_bytes = 0  # received while in a head: bounds what llhttp buffers
        self._head_size = 0  # the head's exact size so far (request target + headers)
        self._chunk_bytes = 0
        self._deadline = 0.0  # loop time: end of the head, or of the body
        self._last_body = 0.0
        self._refused = False
        self._linger_bytes = 0

    # -- connection ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's own
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, f"the server has {self.limits.max_connections} open connections, its limit; "
                              "retry in a moment", retry_after=True)
            return
        self._deadline = self.loop.time() + self.limits.header_timeout_s
        if not getattr(self.server_state, "loraforge_sweeping", False):
            self.server_state.loraforge_sweeping = True  # type: ignore[attr-defined]  # our flag on uvicorn's state
            self.loop.call_later(SWEEP_EVERY_S, _sweep, self.loop, self.server_state)

    def data_received(self, data: bytes) -> None:
        if self._refused:  # lingering: the answer is sent, some more input is discarded
            self._linger_bytes += len(data)
            if self._linger_bytes > LINGER_BYTES:
                self.transport.close()
            return
        self._unset_keepalive_if_required()
        self._chunk_bytes = len(data)
        if self._phase == _HEAD:
            self._head_bytes += len(data)
        elif self._phase == _BODY:
            self._last_body = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            if isinstance(refused, _Refused):
                self._refuse(refused.status, refused.message)
            else:
                self._bad_request()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            self._bad_request()
            return
        if self._phase == _HEAD and self._head_bytes > self.limits.max_header_bytes:
            self._refuse(431, f"request headers are over {self.limits.max_header_bytes} bytes")

    # -- parser callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._phase != _HEAD:  # a kept-alive connection's next request: its head starts now
            self._phase = _HEAD
            self._deadline = self.loop.time() + self.limits.header_timeout_s
        self._head_bytes = self._chunk_bytes  # an upper bound: the chunk may end the last request
        self._head_size = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        # exact, where data_received can only bound it: a whole head may come in one chunk
        size = self._head_size or len(self.url)  # the request target is complete by the first header
        self._head_size = size = size + len(name) + len(value) + 4
        if size > self.limits.max_header_bytes or len(self.headers) >= self.limits.max_headers:
            if size > self.limits.max_header_bytes:
                raise _Refused(431, f"request headers are over {self.limits.max_header_bytes} bytes")
            raise _Refused(431, f"a request may carry at most {self.limits.max_headers} headers")
        # uvicorn's on_header, inlined: this runs once per header of every request
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        self._last_body = self._deadline = 0.0  # set by the first sweep that finds the body unread
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        super().on_message_complete()

    # -- deadlines --------------------------------------------------------------------------------
    def _check_deadline(self, now: float) -> None:
        """Called by the sweep: 408 for a head past its deadline or a body that stalls or crawls."""
        if self._refused or self.transport.is_closing():
            return
        if self._phase == _HEAD:
            if now >= self._deadline:
                self._refuse(408, f"the request headers did not arrive within {self.limits.header_timeout_s:g} s")
            return
        if self._phase != _BODY:
            return
        if not self._deadline:  # first look at this body: its deadline counts from now
            self._last_body = now
            self._deadline = now + self.limits.body_timeout_s + self._body_size() / MIN_BODY_RATE_BYTES_S
        if self.flow.read_paused:  # the app is not reading: the client is not the one stalling
            self._last_body = now
        if now - self._last_body >= self.limits.body_timeout_s or now >= self._deadline:
            self._refuse(408, "the request body did not arrive in time "
                              f"(stalled over {self.limits.body_timeout_s:g} s, or slower than "
                              f"{MIN_BODY_RATE_BYTES_S // 1024} KiB/s)")

    def _body_size(self) -> int:
        """The declared Content-Length, else the largest body any route accepts (bytes)."""
        for name, value in self.headers or ():
            if name == b"content-length" and value.strip().isdigit() and value.strip().isascii():
                return int(value)
        return self.limits.max_body_bytes

    # -- answers ------------------------------------------------------------------------------------
    def _bad_request(self) -> None:
        self._refuse(400, "invalid HTTP request")

    def _refuse(self, status: int, message: str, retry_after: bool = False) -> None:
        """Answer `status` with a JSON error unless a response already started, then close."""
        self._refused = True
        if status != 503:
            logger.warning("refused a request from %s: %s %s", self.client, status, message)
        cycle = self.cycle
        started = cycle is not None and cycle.response_started
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() sees a disconnect, its sends go nowhere
            cycle.message_event.set()
        if self.transport.is_closing():
            return
        if not started:
            body = orjson.dumps({"error": message})
            head = [STATUS_LINE[status], b"content-type: application/json\r\n",
                    b"content-length: %d\r\n" % len(body), b"connection: close\r\n"]
            if retry_after:
                head.append(b"retry-after: %d\r\n" % RETRY_AFTER_S)
            self.transport.write(b"".join(head) + b"\r\n" + body)
        if started or self.flow.read_paused or not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` / `uvicorn.Config` that apply the HTTP limits."""
    options: dict[str, Any] = {
        "timeout_keep_alive": settings.keep_alive_s,
        "h11_max_incomplete_event_size": settings.max_header_bytes,  # if h11 is ever chosen
    }
    if settings.http_limits:
        limits = HttpLimits.from_settings(settings)
        options["http"] = functools.partial(LimitedHttpToolsProtocol, limits=limits)
        # uvicorn's own cap also counts running requests (tasks), not only connections
        options["limit_concurrency"] = settings.max_connections
    return options
