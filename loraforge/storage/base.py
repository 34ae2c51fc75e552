"""The ObjectStore protocol every storage backend implements.

Keys are POSIX-style paths relative to the store's root (`uploads/{user}/{file_id}-{name}.zip`,
`models/{finetune_id}/{slug}.safetensors`, ...). Every write is atomic: a reader sees the whole
object or none of it. Each write returns the sha256 of what was stored so callers can record it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str


class ObjectStore(Protocol):
    def put_file(self, key: str, path: Path) -> StoredObject: ...

    def put_bytes(self, key: str, data: bytes) -> StoredObject: ...

    def put_stream(self, key: str, stream: BinaryIO, max_bytes: int) -> StoredObject: ...

    def get_file(self, key: str, dest: Path) -> Path: ...

    def get_bytes(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int | None: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> list[str]: ...

    def object_url(self, key: str) -> str:
        """The stable (unsigned) URL of an object; what `s3_url` / `cloud_storage_url` hold."""
        ...

    def key_from_url(self, url: str) -> str | None:
        """Inverse of object_url: the key if `url` points into this store, else None."""
        ...

    def presigned_get(self, key: str, expires_s: int) -> str: ...

    def presigned_put(self, key: str, expires_s: int, content_type: str | None, public: bool) -> str: ...
