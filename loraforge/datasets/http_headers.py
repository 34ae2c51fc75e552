"""Reading the headers of a dataset host's answer: sizes, byte ranges and announced digests.

Pure functions over an httpx.Headers. `content_length` and `content_range` (RFC 9110 14.4: the
total after the slash of `bytes 0-3/1234`) give the size a host announces; `announced_sha256`
gives the SHA-256 a host publishes for the whole file, from `Repr-Digest` (RFC 9530), the older
`Digest` (RFC 3230) or S3's `x-amz-checksum-sha256`, as hex, or None when none is given. A value
that cannot be read counts as absent: these headers check a transfer, they never fail one.
"""

from __future__ import annotations

import base64
import binascii
import re

import httpx

_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_SHA256 = re.compile(r"(?:^|,)\s*sha-256=:?([A-Za-z0-9+/=]+):?\s*(?:,|;|$)", re.IGNORECASE)


def content_length(headers: httpx.Headers) -> int | None:
    value = headers.get("content-length", "")
    return int(value) if value.strip().isdigit() else None


def content_range(headers: httpx.Headers) -> tuple[int, int | None] | None:
    """(first byte, total size or None when `*`) of a 206's Content-Range; None if absent or unreadable."""
    match = _RANGE.match(headers.get("content-range", ""))
    if match is None:
        return None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


def _hex(b64: str) -> str | None:
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


def announced_sha256(headers: httpx.Headers) -> str | None:
    """The whole file's SHA-256 (hex) as the host announces it, or None."""
    for name in ("repr-digest", "digest"):
        match = _SHA256.search(headers.get(name, ""))
        if match is not None and (digest := _hex(match.group(1))) is not None:
            return digest
    amz = headers.get("x-amz-checksum-sha256", "")
    # A multipart upload's checksum ends in -N: a checksum of checksums, not of the file.
    return _hex(amz) if amz and "-" not in amz else None
