"""Fetching a user's dataset URL safely: HEAD probe, then a capped, streamed, atomic GET.

Every request goes through loraforge.net's GuardedClient: each hop of a redirect chain (at most
MAX_REDIRECTS) passes the SSRF guard, the connection is made to the very address the guard
checked, proxies from the environment are ignored and the whole transfer has a deadline. The size
cap applies to the Content-Length announced and to the bytes actually read; the file appears at
`dest` only when complete.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from loraforge.config import Settings
from loraforge.errors import DownloadError, PayloadTooLargeError, UnsafeURLError
from loraforge.net.client import MAX_REDIRECTS, GuardedClient, OutboundError
from loraforge.storage.atomic import AtomicWriter, format_bytes

logger = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
# a transfer slower than this on average is abandoned, so a trickling server cannot hold a worker
MIN_RATE_BYTES_S = 32 * 1024
HEADERS = {"User-Agent": "loraforge-fetch/1", "Accept-Encoding": "identity"}


def _client(settings: Settings, deadline_s: float) -> GuardedClient:
    return GuardedClient(allow_private=settings.allow_private_urls, timeout_s=settings.download_timeout_s,
                         deadline_s=deadline_s, headers=HEADERS)


@contextmanager
def _open(client: GuardedClient, method: str, url: str, settings: Settings) -> Iterator[httpx.Response]:
    """The final response for `url` after guarded redirects; it answered 2xx."""
    try:
        with client.open(method, url, follow_redirects=True, max_redirects=MAX_REDIRECTS) as response:
            if not response.is_success:
                hint = " (is the link public and not expired?)" if response.status_code in (401, 403) else ""
                raise DownloadError(f"the server answered {response.status_code} for {url}{hint}")
            yield response
    except OutboundError as exc:
        raise DownloadError(exc.message) from None
    except httpx.TimeoutException:
        raise DownloadError(
            f"{url} did not answer within {settings.download_timeout_s:g} s; try again or use another host"
        ) from None
    except httpx.HTTPError as exc:
        raise DownloadError(f"fetching {url} failed: {exc}") from None


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "")
    return int(value) if value.strip().isdigit() else None


def _check_size(url: str, size: int, settings: Settings) -> None:
    if size > settings.max_upload_bytes:
        raise PayloadTooLargeError(
            f"{url} is {format_bytes(size)}, over the {format_bytes(settings.max_upload_bytes)} limit"
        )


def probe(url: str, settings: Settings) -> int:
    """HEAD `url` (guarded, following redirects): its Content-Length, which must be under the cap."""
    # A HEAD carries no body: the whole exchange gets the plain timeout (it runs inside submit).
    with _client(settings, settings.download_timeout_s) as client, _open(client, "HEAD", url, settings) as response:
        size = _content_length(response)
    if size is None:
        raise DownloadError(
            f"{url} answered HEAD without a Content-Length; the host must support HEAD and GET "
            "and report the file size (upload the ZIP with a pre-signed URL instead)"
        )
    if size == 0:
        raise DownloadError(f"{url} is empty (Content-Length: 0)")
    _check_size(url, size, settings)
    return size


def download(url: str, dest: Path, settings: Settings) -> Path:
    """Fetch `url` to `dest`: HEAD probe, then a streamed GET capped at settings.max_upload_bytes."""
    expected = probe(url, settings)
    allowed_s = settings.download_timeout_s + settings.max_upload_bytes / MIN_RATE_BYTES_S
    deadline = time.monotonic() + allowed_s
    with _client(settings, allowed_s + 5) as client, _open(client, "GET", url, settings) as response:
        announced = _content_length(response)
        if announced is not None:
            _check_size(url, announced, settings)
        try:
            with AtomicWriter(dest, settings.max_upload_bytes, what=url) as out:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    out.write(chunk)
                    if time.monotonic() > deadline:
                        raise DownloadError(f"{url} is sending too slowly; gave up after {out.size} bytes")
                encoded = response.headers.get("content-encoding", "identity") != "identity"
                if announced is not None and not encoded and out.size != announced:
                    raise DownloadError(
                        f"{url} sent {out.size} bytes but announced {announced}; the transfer was cut short"
                    )
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise DownloadError(f"the transfer of {url} broke off: {exc}; try again") from None
    logger.info("downloaded %s (%d bytes, HEAD said %d)", url, out.size, expected)
    return dest


__all__ = ["DownloadError", "PayloadTooLargeError", "UnsafeURLError", "download", "probe"]
