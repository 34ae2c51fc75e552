"""Fetching a user's dataset URL safely: a probe, then a capped, streamed, atomic, resumable GET.

Every request goes through loraforge.net's GuardedClient: each hop of a redirect chain (at most
MAX_REDIRECTS) passes the SSRF guard, the connection is made to the very address the guard
checked, proxies from the environment are ignored and the whole transfer has a deadline. The size
cap applies to the Content-Length announced and to the bytes actually read; the file appears at
`dest` only when complete. A web page is refused: at HEAD when its Content-Type says HTML, and at
GET when the body does not start like a ZIP, with the URL (redacted by `display_url`), what came
back, and how to get a direct link from the common sharing services (Google Drive, Dropbox, OneDrive).

The probe asks HEAD first. A host that refuses HEAD or leaves out the size (S3 answers 403 to a HEAD
on a link signed for GET) is asked again with a ranged GET of four bytes, which also shows whether
the body starts like a ZIP; refusals name the URL the last redirect reached, redacted. A GET that
breaks off is tried again, ATTEMPTS times in all with a growing pause (BACKOFF_S), resuming with
`Range` (and `If-Range`, so a file that changed meanwhile is fetched whole) where the host allows
it; the result must have the size announced and, when the host publishes one, its SHA-256.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from loraforge.config import Settings
from loraforge.datasets.http_headers import announced_sha256, content_length, content_range
from loraforge.errors import DownloadError, PayloadTooLargeError, UnsafeURLError
from loraforge.net.client import MAX_REDIRECTS, GuardedClient, OutboundError, final_url
from loraforge.redaction import redact_url
from loraforge.storage.atomic import AtomicWriter, format_bytes

logger = logging.getLogger(__name__)

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
PROBE_RANGE = "bytes=0-3"  # the four bytes of a ZIP signature
ATTEMPTS = 4  # GETs of one download, the first included
BACKOFF_S = (1.0, 3.0, 9.0)  # pauses before the second, third and fourth GET
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})  # answers that a later GET may not repeat
# (archive signature, what it is): archives people zip datasets in that loraforge does not read.
OTHER_ARCHIVES = (
    (b"\x1f\x8b", "a gzip archive (.gz or .tar.gz)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive (.7z)"),
    (b"Rar!\x1a\x07", "a RAR archive (.rar)"),
    (b"BZh", "a bzip2 archive (.bz2 or .tar.bz2)"),
    (b"\xfd7zXZ\x00", "an xz archive (.xz or .tar.xz)"),
)


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


def _other_archive(head: bytes) -> str | None:
    return next((what for magic, what in OTHER_ARCHIVES if head.startswith(magic)), None)


def _what_came(head: bytes, content_type: str) -> str:
    """What a body that is not a ZIP holds, from its first bytes (never its size: `head` is a prefix)."""
    start = head.lstrip()[:15].lower()
    if _is_web_page(content_type) or start.startswith((b"<!doctype html", b"<html")):
        return "a web page (HTML)"
    if not head:
        return "an empty body"
    kind = content_type.split(";")[0].strip() or "no Content-Type"
    return f"{kind} starting {head[:8]!r}"


def _client(settings: Settings, deadline_s: float) -> GuardedClient:
    return GuardedClient(allow_private=settings.allow_private_urls, timeout_s=settings.download_timeout_s,
                         deadline_s=deadline_s, headers=HEADERS)


def _status_hint(status: int) -> str:
    if status in (401, 403):
        return " (is the link public and not expired?)"
    if status in (405, 501):
        return " (the host must answer GET; or upload the ZIP with a pre-signed URL)"
    return ""


class _Refused(DownloadError):
    """The final response answered `status` (not 2xx); the message names the URL it came from."""

    # `status` has a default: callers re-raise a LoraforgeError as type(exc)(message) with a field's prefix.
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@contextmanager
def _open(client: GuardedClient, method: str, url: str, settings: Settings,
          headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
    """The final response for `url` after guarded redirects; it answered 2xx, else _Refused."""
    try:
        with client.open(method, url, follow_redirects=True, max_redirects=MAX_REDIRECTS,
                         headers=headers) as response:
            if not response.is_success:
                status = response.status_code
                raise _Refused(f"the server answered {status} to {method} for "
                               f"{display_url(final_url(response, url))}{_status_hint(status)}", status)
            yield response
    except OutboundError as exc:
        raise DownloadError(exc.message) from None
    except httpx.TimeoutException:
        raise DownloadError(
            f"{display_url(url)} did not answer within {settings.download_timeout_s:g} s; try again or use another host"
        ) from None
    except httpx.HTTPError as exc:
        raise DownloadError(f"fetching {display_url(url)} failed: {exc}") from None


def _check_size(url: str, size: int, settings: Settings) -> None:
    if size > settings.max_upload_bytes:
        raise PayloadTooLargeError(
            f"{display_url(url)} is {format_bytes(size)}, over the {format_bytes(settings.max_upload_bytes)} limit"
        )


def _head(url: str, settings: Settings) -> int | None:
    """HEAD `url`: its size, or None when the host refuses HEAD or leaves the size out."""
    # A HEAD carries no body: the whole exchange gets the plain timeout (it runs inside submit).
    try:
        with _client(settings, settings.download_timeout_s) as client, \
                _open(client, "HEAD", url, settings) as response:
            if _is_web_page(response.headers.get("content-type", "")):
                raise DownloadError(f"the URL returned a web page, not a ZIP; {DIRECT_LINK}{sharing_hint(url)}")
            return content_length(response.headers)
    except _Refused as exc:
        logger.info("HEAD refused (%s); asking with a ranged GET: %s", exc.status, exc.message)
        return None


def _ranged_probe(url: str, settings: Settings) -> int | None:
    """GET the first four bytes of `url`: its size (from Content-Range, or the Content-Length of a host
    that sends it all), after checking they start a ZIP. Raises DownloadError naming the final URL."""
    with _client(settings, settings.download_timeout_s) as client, \
            _open(client, "GET", url, settings, {"Range": PROBE_RANGE}) as response:
        where = final_url(response, url)
        head = b""
        # Four bytes when the range is honoured; from a host that sends it all, enough to name a web page.
        for chunk in response.iter_bytes():
            head += chunk
            if len(head) >= SNIFF_BYTES:
                break
        _check_zip(where, head[:SNIFF_BYTES], response.headers.get("content-type", ""))
        ranged = content_range(response.headers) if response.status_code == 206 else None
        return ranged[1] if ranged else content_length(response.headers)


def probe(url: str, settings: Settings) -> int | None:
    """The size of the file at `url` (None when the host does not say), which must be under the cap.

    HEAD first (guarded, following redirects); when HEAD is refused or gives no size, a ranged GET
    of the first four bytes, which must start a ZIP. Raises DownloadError (refused, not a ZIP, a web
    page, empty, unreachable: naming the final URL, redacted), PayloadTooLargeError or UnsafeURLError.
    """
    size = _head(url, settings)
    if size is None:
        size = _ranged_probe(url, settings)
    if size == 0:
        raise DownloadError(f"{display_url(url)} is empty (Content-Length: 0)")
    if size is not None:
        _check_size(url, size, settings)
    return size


def _check_zip(url: str, head: bytes, content_type: str) -> None:
    """DownloadError naming the URL and what it sent, unless `head` starts a ZIP archive."""
    if head.startswith(ZIP_MAGIC):
        return
    archive = _other_archive(head)
    if archive is not None:
        raise DownloadError(f"{display_url(url)} is {archive}, but a dataset must be a ZIP archive; "
                            "pack the images into a .zip and give its link")
    raise DownloadError(
        f"{display_url(url)} did not send a ZIP archive but {_what_came(head, content_type)}; {DIRECT_LINK} "
        f"to the .zip file{sharing_hint(url, head)}"
    )


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
            _check_size(self.url, total, self.settings)
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
                    _check_zip(self.url, self.head, content_type)
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
            _check_zip(self.url, self.head, "")
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
                with _client(settings, allowed_s + 5) as client, \
                        _open(client, "GET", url, settings, transfer.request_headers(out.size)) as response:
                    transfer.receive(response, out)
                break
            except (_BrokeOff, _Refused) as exc:
                if isinstance(exc, _Refused) and exc.status not in RETRY_STATUSES:
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
