"""Fetching a user's dataset URL safely: HEAD probe, then a capped, streamed, atomic GET.

Every request goes through loraforge.net's GuardedClient: each hop of a redirect chain (at most
MAX_REDIRECTS) passes the SSRF guard, the connection is made to the very address the guard
checked, proxies from the environment are ignored and the whole transfer has a deadline. The size
cap applies to the Content-Length announced and to the bytes actually read; the file appears at
`dest` only when complete. A web page is refused: at HEAD when its Content-Type says HTML, and at
GET when the body does not start like a ZIP, with the URL (redacted by `display_url`), what came
back, and how to get a direct link from the common sharing services (Google Drive, Dropbox, OneDrive).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from loraforge.config import Settings
from loraforge.errors import DownloadError, PayloadTooLargeError, UnsafeURLError
from loraforge.net.client import MAX_REDIRECTS, GuardedClient, OutboundError
from loraforge.redaction import redact_url
from loraforge.storage.atomic import AtomicWriter, format_bytes

logger = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
WEB_PAGE_TYPES = ("text/html", "application/xhtml+xml")
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or the end record of an empty ZIP
SNIFF_BYTES = 4096  # enough of a body to say what it is (and which sharing service sent it)
DIRECT_LINK = "use a direct download link"
# Sharing services whose links open a web page; how to get the file itself instead.
SHARING_HINTS = (
    (("drive.google.com", "docs.google.com", "Google Drive"),
     ("for Google Drive, share with 'Anyone with the link' and use "
      "https://drive.google.com/uc?export=download&id=FILE_ID")),
    (("dropbox.com", "Dropbox"), "for Dropbox, end the link with dl=1 instead of dl=0"),
    (("onedrive.live.com", "1drv.ms", "sharepoint.com", "OneDrive"),
     "for OneDrive, add download=1 to the link, or copy the link of its Download button"),
)
# a transfer slower than this on average is abandoned, so a trickling server cannot hold a worker
MIN_RATE_BYTES_S = 32 * 1024
HEADERS = {"User-Agent": "loraforge-fetch/1", "Accept-Encoding": "identity"}


def display_url(url: str) -> str:
    """`url` as messages show it: no user name or password, no query or fragment (they hold tokens)."""
    return redact_url(url)


def sharing_hint(url: str, page: bytes = b"") -> str:
    """`; for Dropbox, end the link with dl=1...` when the URL's host or the page names a sharing service."""
    host = (urlsplit(url).hostname or "").lower()
    text = page[:SNIFF_BYTES].decode("utf-8", errors="ignore")
    for marks, hint in SHARING_HINTS:
        if any(host == m or host.endswith("." + m) or (m[0].isupper() and m in text) for m in marks):
            return f"; {hint}"
    return ""


def _is_web_page(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() in WEB_PAGE_TYPES


def _what_came(head: bytes, content_type: str, size: int) -> str:
    start = head.lstrip()[:15].lower()
    if _is_web_page(content_type) or start.startswith((b"<!doctype html", b"<html")):
        return "a web page (HTML)"
    if size == 0:
        return "an empty body"
    kind = content_type.split(";")[0].strip() or "no Content-Type"
    return f"{size} bytes of {kind} starting {head[:8]!r}"


def _client(settings: Settings, deadline_s: float) -> GuardedClient:
    return GuardedClient(allow_private=settings.allow_private_urls, timeout_s=settings.download_timeout_s,
                         deadline_s=deadline_s, headers=HEADERS)


def _status_hint(status: int) -> str:
    if status in (401, 403):
        return " (is the link public and not expired?)"
    if status in (405, 501):
        return " (the host must answer HEAD and GET; or upload the ZIP with a pre-signed URL)"
    return ""


@contextmanager
def _open(client: GuardedClient, method: str, url: str, settings: Settings) -> Iterator[httpx.Response]:
    """The final response for `url` after guarded redirects; it answered 2xx."""
    try:
        with client.open(method, url, follow_redirects=True, max_redirects=MAX_REDIRECTS) as response:
            if not response.is_success:
                raise DownloadError(f"the server answered {response.status_code} to {method} for "
                                    f"{display_url(url)}{_status_hint(response.status_code)}")
            yield response
    except OutboundError as exc:
        raise DownloadError(exc.message) from None
    except httpx.TimeoutException:
        raise DownloadError(
            f"{display_url(url)} did not answer within {settings.download_timeout_s:g} s; try again or use another host"
        ) from None
    except httpx.HTTPError as exc:
        raise DownloadError(f"fetching {display_url(url)} failed: {exc}") from None


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "")
    return int(value) if value.strip().isdigit() else None


def _check_size(url: str, size: int, settings: Settings) -> None:
    if size > settings.max_upload_bytes:
        raise PayloadTooLargeError(
            f"{display_url(url)} is {format_bytes(size)}, over the {format_bytes(settings.max_upload_bytes)} limit"
        )


def probe(url: str, settings: Settings) -> int:
    """HEAD `url` (guarded, following redirects): its Content-Length, which must be under the cap."""
    # A HEAD carries no body: the whole exchange gets the plain timeout (it runs inside submit).
    with _client(settings, settings.download_timeout_s) as client, _open(client, "HEAD", url, settings) as response:
        size = _content_length(response)
        if _is_web_page(response.headers.get("content-type", "")):
            raise DownloadError(f"the URL returned a web page, not a ZIP; {DIRECT_LINK}{sharing_hint(url)}")
    if size is None:
        raise DownloadError(
            f"{display_url(url)} answered HEAD without a Content-Length; the host must support HEAD and GET "
            "and report the file size (upload the ZIP with a pre-signed URL instead)"
        )
    if size == 0:
        raise DownloadError(f"{display_url(url)} is empty (Content-Length: 0)")
    _check_size(url, size, settings)
    return size


def _check_zip(url: str, head: bytes, content_type: str) -> None:
    """DownloadError naming the URL and what it sent, unless `head` starts a ZIP archive."""
    if head.startswith(ZIP_MAGIC):
        return
    what = _what_came(head, content_type, len(head))
    raise DownloadError(
        f"{display_url(url)} did not send a ZIP archive but {what}; {DIRECT_LINK} to the .zip file"
        f"{sharing_hint(url, head)}"
    )


def download(url: str, dest: Path, settings: Settings) -> Path:
    """Fetch `url` to `dest`: HEAD probe, then a streamed GET capped at settings.max_upload_bytes."""
    expected = probe(url, settings)
    allowed_s = settings.download_timeout_s + settings.max_upload_bytes / MIN_RATE_BYTES_S
    deadline = time.monotonic() + allowed_s
    with _client(settings, allowed_s + 5) as client, _open(client, "GET", url, settings) as response:
        announced = _content_length(response)
        if announced is not None:
            _check_size(url, announced, settings)
        content_type = response.headers.get("content-type", "")
        head = b""
        try:
            with AtomicWriter(dest, settings.max_upload_bytes, what=url) as out:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    if len(head) < SNIFF_BYTES:
                        head += chunk[: SNIFF_BYTES - len(head)]
                        if len(head) >= 4:
                            _check_zip(url, head, content_type)
                    out.write(chunk)
                    if time.monotonic() > deadline:
                        raise DownloadError(f"{display_url(url)} is sending too slowly; gave up after {out.size} bytes")
                encoded = response.headers.get("content-encoding", "identity") != "identity"
                if announced is not None and not encoded and out.size != announced:
                    raise DownloadError(
                        f"{display_url(url)} sent {out.size} bytes but announced {announced}; the transfer was cut short"
                    )
                if len(head) < 4:
                    _check_zip(url, head, content_type)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise DownloadError(f"the transfer of {display_url(url)} broke off: {exc}; try again") from None
    logger.info("downloaded %s (%d bytes, HEAD said %d)", url, out.size, expected)
    return dest


__all__ = ["DownloadError", "PayloadTooLargeError", "UnsafeURLError", "download", "probe"]
