"""The ObjectStore protocol every storage backend implements, and the key rules they share.

Keys are POSIX-style paths relative to the store's root (`uploads/{user}/{file_id}-{name}.zip`,
`models/{finetune_id}/{slug}.safetensors`, ...). Every write is atomic: a reader sees the whole
object or none of it. Each write returns the sha256 of what was stored so callers can record it.
Objects are private unless written or marked public; a public object is downloadable from
`public_url(key)` without a signature, a private one only through `presigned_get`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from loraforge.errors import ValidationError

CHUNK_BYTES = 1024 * 1024
MAX_KEY_CHARS = 1024
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative object key, else raise ValidationError.

    Segments starting with a dot are refused as well as `.`/`..`: backends keep their temp files
    and metadata under dotted names, so a user key can never collide with or reach them.
    """
    if not isinstance(key, str) or not key:
        raise ValidationError("storage key must be a non-empty string")
    if len(key) > MAX_KEY_CHARS:
        raise ValidationError(f"storage key is longer than {MAX_KEY_CHARS} characters")
    if _CONTROL_CHARS.search(key) or "\\" in key:
        raise ValidationError(f"storage key {key!r} contains a control character or backslash")
    if key.startswith("/"):
        raise ValidationError(f"storage key {key!r} must be relative (no leading '/')")
    for segment in key.split("/"):
        if not segment:
            raise ValidationError(f"storage key {key!r} has an empty path segment")
        if segment.startswith("."):
            raise ValidationError(f"storage key {key!r} may not contain '.', '..' or dot-segments")
    return key


class ObjectStore(Protocol):
    def put_file(
        self, key: str, path: Path, *, content_type: str | None = None, public: bool = False
    ) -> StoredObject: ...

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str | None = None, public: bool = False
    ) -> StoredObject: ...

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        max_bytes: int | None,
        *,
        content_type: str | None = None,
        public: bool = False,
    ) -> StoredObject:
        """Store what `stream` yields; over `max_bytes` (None: no cap) raises PayloadTooLargeError
        and stores nothing."""
        ...

    def get_file(self, key: str, dest: Path) -> Path:
        """Copy the object to `dest` atomically; a missing key raises NotFoundError."""
        ...

    def get_bytes(self, key: str) -> bytes: ...

    def open_read(self, key: str) -> BinaryIO:
        """A readable binary stream of the object (use it as a context manager)."""
        ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int | None: ...

    def sha256(self, key: str) -> str:
        """The object's sha256 (recorded at write time, computed if the writer was a client)."""
        ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> list[str]: ...

    def is_public(self, key: str) -> bool: ...

    def set_public(self, key: str, public: bool) -> None: ...

    def object_url(self, key: str) -> str:
        """The stable (unsigned) URL of an object; what `s3_url` / `cloud_storage_url` hold."""
        ...

    def key_from_url(self, url: str) -> str | None:
        """Inverse of object_url (and public_url): the key if `url` points into this store, else None."""
        ...

    def public_url(self, key: str) -> str:
        """A link that downloads a public object with no key or signature."""
        ...

    def presigned_get(self, key: str, expires_s: int) -> str: ...

    def presigned_put(self, key: str, expires_s: int, content_type: str | None, public: bool) -> str:
        """A URL a client can PUT the object to; when `public` the client must send
        `x-amz-acl: public-read`, and when `content_type` is given, that `Content-Type`."""
        ...
