"""The one URL redaction of loraforge: what a URL may show in logs, error messages and to other keys.

Dataset and webhook URLs carry secrets in two places: the userinfo (`user:password@`) and the
query string (pre-signed S3 links: `X-Amz-Signature=...`; our own `signature=...`). `redact_url`
drops both (and the fragment; a dropped query shows as `?…`), keeping scheme, host, port and path,
which is what a person needs to recognise the URL; `redact_urls` does that to every URL inside a
text, whatever follows the host: userinfo is taken up to its `@` even when it holds a quote, and a
query string up to the next whitespace. LoraforgeError applies
it to every message, and `RedactingFilter` to every log record (uvicorn's access log included,
whose request target loses its query string).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

# scheme://, then userinfo up to its '@' whatever it holds (a password may hold a quote), then host
# and path up to whitespace or a quote/bracket that ends it in prose and reprs, then a query or
# fragment up to whitespace whatever it holds: cutting a secret at a quote would show its rest.
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,15}://(?:[^\s/?#@]*@)?[^\s'\"<>`?#]*(?:[?#]\S*)?")
_QUERY = re.compile(r"[?#].*$")
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#]*@")


# Help links our own messages give (no secret in their query): kept whole.
HELP_URLS = frozenset({"https://drive.google.com/uc?export=download&id=FILE_ID"})
HIDDEN = "?…"  # what stands for a removed query string, so a reader knows there was one


def redact_url(url: str) -> str:
    """`url` without userinfo, query string or fragment (a query shows as `?…`); never raises."""
    if url in HELP_URLS:
        return url
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        if not parts.scheme or (not host and "@" in parts.netloc):
            raise ValueError
        hidden = HIDDEN if parts.query else ""
        return urlunsplit((parts.scheme, host, parts.path, "", "")) + hidden
    except ValueError:  # unparseable ('http://[::1'): cut by pattern instead
        return _USERINFO.sub(r"\1", _QUERY.sub("", url))


def redact_urls(text: str) -> str:
    """`text` with every URL in it passed through `redact_url`."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


class RedactingFilter(logging.Filter):
    """A handler filter: the record's message, arguments applied, with its URLs redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) >= 3:
            args = list(record.args)
            args[2] = _QUERY.sub("", str(args[2]))  # the request target: path?query
            record.args = tuple(args)
        message = record.getMessage()
        redacted = redact_urls(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
