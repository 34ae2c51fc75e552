"""Probing a user's dataset URL before it is fetched, and the checks every fetch of one shares.

`probe` asks HEAD first (guarded by loraforge.net's GuardedClient: each redirect hop passes the SSRF
guard, the connection goes to the address the guard checked, no proxies, one deadline). A host that
refuses HEAD or leaves out the size (S3 answers 403 to a HEAD on a link signed for GET) is asked
again with a GET of bytes 0-3, which also shows whether the body starts like a ZIP. Refusals name
the URL the last redirect reached, redacted by `display_url`. `check_zip` names what came instead
of a ZIP: a web page (with how to get a direct link from Google Drive, Dropbox or OneDrive), another
archive (`.tar.gz`, 7-Zip, RAR...), or the type and first bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx

from loraforge.config import Settings
from loraforge.datasets.http_headers import content_length, content_range
from loraforge.errors import DownloadError, PayloadTooLargeError
from loraforge.net.client import MAX_REDIRECTS, GuardedClient, OutboundError, final_url
from loraforge.redaction import redact_url
from loraforge.storage.atomic import format_bytes

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
HEADERS = {"User-Agent": "loraforge-fetch/1", "Accept-Encoding": "identity"}
PROBE_RANGE = "bytes=0-3"  # the four bytes of a ZIP signature
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


def guarded_client(settings: Settings, deadline_s: float) -> GuardedClient:
    """A GuardedClient for dataset hosts: the settings' timeout and private-address rule, `deadline_s` whole."""
    return GuardedClient(allow_private=settings.allow_private_urls, timeout_s=settings.download_timeout_s,
                         deadline_s=deadline_s, headers=HEADERS)


def _status_hint(status: int) -> str:
    if status in (401, 403):
        return " (is the link public and not expired?)"
    if status in (405, 501):
        return " (the host must answer GET; or upload the ZIP with a pre-signed URL)"
    return ""


class Refused(DownloadError):
    """The final response answered `status` (not 2xx); the message names the URL it came from."""

    # `status` has a default: callers re-raise a LoraforgeError as type(exc)(message) with a field's prefix.
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@contextmanager
def open_final(client: GuardedClient, method: str, url: str, settings: Settings,
               headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
    """The final response for `url` after guarded redirects, which answered 2xx.

    Raises Refused (any other status, naming the final URL, redacted), DownloadError (unreachable,
    timed out, a protocol error) or UnsafeURLError (a hop the guard refused).
    """
    try:
        with client.open(method, url, follow_redirects=True, max_redirects=MAX_REDIRECTS,
                         headers=headers) as response:
            if not response.is_success:
                status = response.status_code
                raise Refused(f"the server answered {status} to {method} for "
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


def check_size(url: str, size: int, settings: Settings) -> None:
    """PayloadTooLargeError when `size` is over settings.max_upload_bytes."""
    if size > settings.max_upload_bytes:
        raise PayloadTooLargeError(
            f"{display_url(url)} is {format_bytes(size)}, over the {format_bytes(settings.max_upload_bytes)} limit"
        )


def _head(url: str, settings: Settings) -> int | None:
    """HEAD `url`: its size, or None when the host refuses HEAD or leaves the size out."""
    # A HEAD carries no body: the whole exchange gets the plain timeout (it runs inside submit).
    try:
        with guarded_client(settings, settings.download_timeout_s) as client, \
                open_final(client, "HEAD", url, settings) as response:
            if _is_web_page(response.headers.get("content-type", "")):
                raise DownloadError(f"the URL returned a web page, not a ZIP; {DIRECT_LINK}{sharing_hint(url)}")
            return content_length(response.headers)
    except Refused as exc:
        logger.info("HEAD refused (%s); asking with a ranged GET: %s", exc.status, exc.message)
        return None


def _ranged_probe(url: str, settings: Settings) -> int | None:
    """GET the first four bytes of `url`: its size (from Content-Range, or the Content-Length of a host
    that sends it all), after checking they start a ZIP. Raises DownloadError naming the final URL."""
    with guarded_client(settings, settings.download_timeout_s) as client, \
            open_final(client, "GET", url, settings, {"Range": PROBE_RANGE}) as response:
        where = final_url(response, url)
        head = b""
        # Four bytes when the range is honoured; from a host that sends it all, enough to name a web page.
        for chunk in response.iter_bytes():
            head += chunk
            if len(head) >= SNIFF_BYTES:
                break
        check_zip(where, head[:SNIFF_BYTES], response.headers.get("content-type", ""))
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
        check_size(url, size, settings)
    return size


def check_zip(url: str, head: bytes, content_type: str) -> None:
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
