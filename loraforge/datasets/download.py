"""Fetching a user's dataset URL safely: the probe, then a capped, streamed, atomic, resumable GET.

Every request goes through loraforge.net's GuardedClient (see loraforge.datasets.url_probe, which
also probes the URL first: HEAD, or a ranged GET where HEAD is refused). The size cap applies to the
size announced and to the bytes actually read; the file appears at `dest` only when complete. A GET
that breaks off is tried again, ATTEMPTS GETs in all with a growing pause (BACKOFF_S), resuming
with `Range` (and `If-Range`, so a file that changed meanwhile is fetched whole) where the host
allows it; the result must have the size announced and, when the host publishes one, its SHA-256.
A body that is not a ZIP is refused naming the URL (redacted) and what came instead.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from loraforge.config import Settings
from loraforge.datasets.http_headers import announced_sha256, content_length, content_range
from loraforge.datasets.url_probe import (
    SNIFF_BYTES,
    Refused,
    check_size,
    check_zip,
    display_url,
    guarded_client,
    open_final,
    probe,
)
from loraforge.errors import DownloadError, PayloadTooLargeError, UnsafeURLError
from loraforge.storage.atomic import AtomicWriter

logger = logging.getLogger(__name__)

# a transfer slower than this on average is abandoned, so a trickling server cannot hold a worker
MIN_RATE_BYTES_S = 32 * 1024
ATTEMPTS = 4  # GETs of one download, the first included
BACKOFF_S = (1.0, 3.0, 9.0)  # pauses before the second, third and fourth GET
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})  # answers that a later GET may not repeat


class _BrokeOff(Exception):
    """One GET ended before the whole file came; another may finish it."""


@dataclass
class _Transfer:
    """What the GETs of one download have learnt: the size, the validator for If-Range, the digest."""

    url: str
    settings: Settings
    deadline: float
    total: int | None = None
    validator: str | None = None
    sha256: str | None = None
    head: bytes = b""  # the body's first SNIFF_BYTES, to tell a ZIP from what else came
    checked: bool = False

    def request_headers(self, have: int) -> dict[str, str]:
        if not have:
            return {}
        headers = {"Range": f"bytes={have}-"}
        if self.validator:  # a file replaced meanwhile comes whole (200), not as a wrong tail
            headers["If-Range"] = self.validator
        return headers

    def learn(self, response: httpx.Response) -> int:
        """Read a 200 or 206's headers; the offset its body starts at."""
        ranged = content_range(response.headers) if response.status_code == 206 else None
        total = ranged[1] if ranged else content_length(response.headers)
        if response.headers.get("content-encoding", "identity") != "identity":
            total = None  # a compressed body's length is not the file's
        if total is not None:
            check_size(self.url, total, self.settings)
            self.total = total
        self.validator = response.headers.get("etag") or response.headers.get("last-modified") or self.validator
        self.sha256 = announced_sha256(response.headers) or self.sha256
        return ranged[0] if ranged else 0

    def receive(self, response: httpx.Response, out: AtomicWriter) -> None:
        """Append the body to `out` (from the start when the host sent the whole file again)."""
        start = self.learn(response)
        if start != out.size:
            out.restart()
            self.head, self.checked = b"", False
            if start:
                raise _BrokeOff(f"the host resumed at byte {start}, not {out.size}")
        content_type = response.headers.get("content-type", "")
        try:
            # As they arrive: a chunker holding bytes back would lose them when the connection breaks.
            for chunk in response.iter_bytes():
                if len(self.head) < SNIFF_BYTES:
                    self.head += chunk[: SNIFF_BYTES - len(self.head)]
                if not self.checked and len(self.head) >= 4:
                    check_zip(self.url, self.head, content_type)
                    self.checked = True
                out.write(chunk)
                if time.monotonic() > self.deadline:
                    raise DownloadError(f"{display_url(self.url)} is sending too slowly; gave up after {out.size} bytes")
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise _BrokeOff(f"{str(exc) or type(exc).__name__} after {out.size} bytes") from None
        if self.total is not None and out.size < self.total:
            raise _BrokeOff(f"the connection closed after {out.size} of {self.total} bytes")
        if self.total is None and response.status_code == 206:
            raise _BrokeOff(f"the host sent part of the file (to byte {out.size}) without saying its size")

    def check(self, out: AtomicWriter) -> None:
        """DownloadError unless the file is whole: the size announced, the digest published."""
        if not self.checked:
            check_zip(self.url, self.head, "")
        if self.total is not None and out.size != self.total:
            raise DownloadError(f"{display_url(self.url)} sent {out.size} bytes but announced {self.total}")
        if self.sha256 is not None and out.sha256 != self.sha256:
            raise DownloadError(
                f"{display_url(self.url)} sent a file whose SHA-256 is {out.sha256}, not the {self.sha256} "
                "the host announced; the file changed or was damaged on the way: try again"
            )


def download(url: str, dest: Path, settings: Settings) -> Path:
    """Fetch `url` to `dest`: probe, then streamed GETs capped at settings.max_upload_bytes, resumed.

    A GET that breaks off (a reset, a short body, a 5xx or 429) is tried again after BACKOFF_S, up to
    ATTEMPTS GETs, resuming where the host allows ranges. Raises DownloadError (refused, not a ZIP,
    too slow, incomplete after every attempt, saying how many were made, or a size or SHA-256 that
    differs from what the host announced), PayloadTooLargeError or UnsafeURLError.
    """
    expected = probe(url, settings)
    allowed_s = settings.download_timeout_s + settings.max_upload_bytes / MIN_RATE_BYTES_S
    transfer = _Transfer(url, settings, time.monotonic() + allowed_s, total=expected)
    with AtomicWriter(dest, settings.max_upload_bytes, what=url) as out:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with guarded_client(settings, allowed_s + 5) as client, \
                        open_final(client, "GET", url, settings, transfer.request_headers(out.size)) as response:
                    transfer.receive(response, out)
                break
            except (_BrokeOff, Refused) as exc:
                if isinstance(exc, Refused) and exc.status not in RETRY_STATUSES:
                    raise
                if attempt == ATTEMPTS or time.monotonic() + BACKOFF_S[attempt - 1] > transfer.deadline:
                    made = f"{attempt} GET{'s' if attempt > 1 else ''}"
                    raise DownloadError(
                        f"the transfer of {display_url(url)} did not complete after {made} (the last: {exc}); "
                        "the host may be unreliable: try again later or use another host"
                    ) from None
                logger.info("GET %d of %s broke off (%s); retrying in %g s from byte %d", attempt,
                            display_url(url), exc, BACKOFF_S[attempt - 1], out.size)
                time.sleep(BACKOFF_S[attempt - 1])
        transfer.check(out)
    logger.info("downloaded %s (%d bytes in %d GETs, sha256 %s)", display_url(url), out.size, attempt,
                out.sha256[:12])
    return dest


__all__ = ["DownloadError", "PayloadTooLargeError", "UnsafeURLError", "download", "probe"]
