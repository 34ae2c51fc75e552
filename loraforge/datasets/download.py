"""Fetching a user's dataset URL safely: HEAD probe, then a capped, streamed, atomic GET.

Every request, redirects included, goes through the SSRF guard, and the connection is made to
the very address the guard checked (the URL's host stays in the Host header and TLS SNI), so a
DNS answer that changes between check and connect cannot reach an internal address. Redirects are
followed by hand, at most MAX_REDIRECTS. The size cap applies to the Content-Length announced and
to the bytes actually read; the file appears at `dest` only when complete. Proxies from the
environment are ignored on purpose: they would connect on our behalf to unchecked addresses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from loraforge.config import Settings
from loraforge.datasets.url_guard import resolve_safe
from loraforge.errors import DownloadError, PayloadTooLargeError, UnsafeURLError
from loraforge.storage.atomic import AtomicWriter, format_bytes

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
CHUNK_BYTES = 256 * 1024
# a transfer slower than this on average is abandoned, so a trickling server cannot hold a worker
MIN_RATE_BYTES_S = 32 * 1024
HEADERS = {"User-Agent": "loraforge-fetch/1", "Accept-Encoding": "identity"}


def _client(settings: Settings) -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(settings.download_timeout_s), follow_redirects=False,
                        trust_env=False, headers=HEADERS)


def send_pinned(client: httpx.Client, method: str, url: str, settings: Settings) -> httpx.Response:
    """One request to an address of `url`'s host that passed the guard (tried in order)."""
    host, port, addresses = resolve_safe(url, settings.allow_private_urls)
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    host_header = parts.netloc.rpartition("@")[2]
    last_error: httpx.ConnectError | None = None
    for address in addresses:
        literal = f"[{address}]" if address.version == 6 else str(address)
        netloc = f"{userinfo}@{literal}:{port}" if userinfo else f"{literal}:{port}"
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        request = client.build_request(method, pinned, headers={"Host": host_header}, extensions=extensions)
        try:
            return client.send(request, stream=True)
        except httpx.ConnectError as exc:
            last_error = exc
    if "CERTIFICATE_VERIFY_FAILED" in str(last_error):
        raise DownloadError(f"the TLS certificate of {host} could not be verified for {url}: {last_error}")
    raise DownloadError(f"could not connect to {host} for {url}: {last_error}")


@contextmanager
def _open(client: httpx.Client, method: str, url: str, settings: Settings) -> Iterator[httpx.Response]:
    """The final response for `url` after guarded redirects; it answered 2xx."""
    current = url
    try:
        for _hop in range(MAX_REDIRECTS + 1):
            response = send_pinned(client, method, current, settings)
            if not response.is_redirect:
                break
            response.close()
            target = urljoin(current, response.headers["location"])
            logger.info("%s redirected to %s", current, target)
            current = target
        else:
            raise DownloadError(f"{url} redirected more than {MAX_REDIRECTS} times; give the final URL")
        try:
            if not response.is_success:
                hint = " (is the link public and not expired?)" if response.status_code in (401, 403) else ""
                raise DownloadError(f"the server answered {response.status_code} for {url}{hint}")
            yield response
        finally:
            response.close()
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
    with _client(settings) as client, _open(client, "HEAD", url, settings) as response:
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
    deadline = time.monotonic() + settings.download_timeout_s + settings.max_upload_bytes / MIN_RATE_BYTES_S
    with _client(settings) as client, _open(client, "GET", url, settings) as response:
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
