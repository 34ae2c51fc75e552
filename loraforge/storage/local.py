"""LocalStore: objects as files under one root directory, the default backend.

Object `k` lives at `root/k`; its metadata (size, sha256, content type, public flag) at
`root/.meta/k.json`. Both are written atomically (see atomic.py), the object first, so metadata
never describes a file that is not there. Links point at the API's /files route: `object_url` and
`public_url` are the stable `{public_url}/files/{key}`, pre-signed links add an expiring HMAC
signature (signing.py) that the route checks.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import quote, unquote, urlsplit

from loraforge.errors import NotFoundError, ValidationError
from loraforge.storage import signing
from loraforge.storage.atomic import AtomicWriter
from loraforge.storage.base import CHUNK_BYTES, StoredObject, validate_key

logger = logging.getLogger(__name__)

META_DIR = ".meta"


class LocalStore:
    """An ObjectStore on local disk; links are served by loraforge.api.routes.files."""

    def __init__(self, root: Path, public_url: str, secret: bytes) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.base_url = public_url.rstrip("/")
        self.secret = secret

    # -- paths -------------------------------------------------------------------------------
    def path_of(self, key: str) -> Path:
        """The file behind `key`, refusing anything that would land outside the root."""
        path = (self.root / validate_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise ValidationError(f"storage key {key!r} points outside the store")
        return path

    def _meta_path(self, key: str) -> Path:
        return self.root / META_DIR / f"{validate_key(key)}.json"

    def _read_meta(self, key: str) -> dict[str, Any]:
        try:
            meta: dict[str, Any] = json.loads(self._meta_path(key).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return meta

    def _write_meta(self, key: str, meta: dict[str, Any]) -> None:
        with AtomicWriter(self._meta_path(key)) as out:
            out.write(json.dumps(meta, sort_keys=True).encode())

    # -- writes ------------------------------------------------------------------------------
    def writer(
        self, key: str, max_bytes: int | None = None, *, content_type: str | None = None,
        public: bool = False,
    ) -> _ObjectWriter:
        """An atomic writer for `key`; used by put_* and by the /files upload route."""
        return _ObjectWriter(self, key, max_bytes, content_type, public)

    def put_stream(
        self, key: str, stream: BinaryIO, max_bytes: int | None, *, content_type: str | None = None,
        public: bool = False,
    ) -> StoredObject:
        with self.writer(key, max_bytes, content_type=content_type, public=public) as out:
            while chunk := stream.read(CHUNK_BYTES):
                out.write(chunk)
        return out.result

    def put_file(
        self, key: str, path: Path, *, content_type: str | None = None, public: bool = False
    ) -> StoredObject:
        with open(path, "rb") as stream:
            return self.put_stream(key, stream, None, content_type=content_type, public=public)

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str | None = None, public: bool = False
    ) -> StoredObject:
        with self.writer(key, content_type=content_type, public=public) as out:
            out.write(data)
        return out.result

    # -- reads -------------------------------------------------------------------------------
    def open_read(self, key: str) -> BinaryIO:
        try:
            return open(self.path_of(key), "rb")
        except (FileNotFoundError, IsADirectoryError):
            raise NotFoundError(f"object {key!r} does not exist in storage") from None

    def get_bytes(self, key: str) -> bytes:
        with self.open_read(key) as stream:
            return stream.read()

    def get_file(self, key: str, dest: Path) -> Path:
        with self.open_read(key) as stream, AtomicWriter(dest) as out:
            while chunk := stream.read(CHUNK_BYTES):
                out.write(chunk)
        return dest

    def exists(self, key: str) -> bool:
        return self.path_of(key).is_file()

    def size(self, key: str) -> int | None:
        path = self.path_of(key)
        return path.stat().st_size if path.is_file() else None

    def content_type(self, key: str) -> str | None:
        return self._read_meta(key).get("content_type")

    def sha256(self, key: str) -> str:
        meta = self._read_meta(key)
        size = self.size(key)
        if size is None:
            raise NotFoundError(f"object {key!r} does not exist in storage")
        if meta.get("sha256") and meta.get("size") == size:
            return str(meta["sha256"])
        # written by hand or before metadata existed: hash the bytes themselves
        h = hashlib.sha256()
        with self.open_read(key) as stream:
            while chunk := stream.read(CHUNK_BYTES):
                h.update(chunk)
        return h.hexdigest()

    def delete(self, key: str) -> None:
        """Remove the object and its metadata, and the folders they leave empty (a deleted job
        leaves no empty `datasets/{id}/`)."""
        path, meta = self.path_of(key), self._meta_path(key)
        path.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        _remove_empty_folders(path.parent, self.root)
        _remove_empty_folders(meta.parent, self.root / META_DIR)

    def list(self, prefix: str) -> list[str]:
        # walk only the folder the prefix names ("checkpoints/j1/" -> checkpoints/j1), not the store
        folder = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        if ".." in prefix.split("/") or not folder.resolve().is_relative_to(self.root):
            return []
        keys = []
        for path in folder.rglob("*"):
            rel = path.relative_to(self.root).as_posix()
            hidden = any(part.startswith(".") for part in rel.split("/"))
            if path.is_file() and not hidden and rel.startswith(prefix):
                keys.append(rel)
        return sorted(keys)

    def is_public(self, key: str) -> bool:
        return bool(self._read_meta(key).get("public"))

    def set_public(self, key: str, public: bool) -> None:
        if not self.exists(key):
            raise NotFoundError(f"object {key!r} does not exist in storage")
        meta = self._read_meta(key)
        meta["public"] = public
        self._write_meta(key, meta)

    # -- links -------------------------------------------------------------------------------
    def object_url(self, key: str) -> str:
        return f"{self.base_url}/files/{quote(validate_key(key))}"

    def public_url(self, key: str) -> str:
        return self.object_url(key)

    def key_from_url(self, url: str) -> str | None:
        try:
            parts = urlsplit(url)
        except ValueError:  # 'http://[::1' and the like: not one of ours
            return None
        base = urlsplit(self.base_url)
        prefix = f"{base.path}/files/"
        if (parts.scheme, parts.netloc) != (base.scheme, base.netloc) or not parts.path.startswith(prefix):
            return None
        try:
            return validate_key(unquote(parts.path[len(prefix):]))
        except ValidationError:
            return None

    def presigned_get(self, key: str, expires_s: int) -> str:
        grant = signing.make_grant("GET", validate_key(key), expires_s)
        return f"{self.object_url(key)}?{signing.signed_query(self.secret, grant)}"

    def presigned_put(self, key: str, expires_s: int, content_type: str | None, public: bool) -> str:
        grant = signing.make_grant("PUT", validate_key(key), expires_s, content_type, public)
        return f"{self.object_url(key)}?{signing.signed_query(self.secret, grant)}"


def _remove_empty_folders(folder: Path, stop: Path) -> None:
    """Remove `folder`, then its parents, while they are empty, up to (not including) `stop`.

    A writer that makes the folder again meanwhile is safe: rmdir refuses a folder holding its
    temp file, and AtomicWriter makes the folder again if it vanished before the temp file.
    """
    while folder != stop and folder.is_relative_to(stop):
        try:
            folder.rmdir()
        except OSError:  # not empty (or already gone): its parents are in use too
            return
        folder = folder.parent


class _ObjectWriter(AtomicWriter):
    """An AtomicWriter that also records the object's metadata once the file is in place."""

    def __init__(self, store: LocalStore, key: str, max_bytes: int | None,
                 content_type: str | None, public: bool) -> None:
        super().__init__(store.path_of(key), max_bytes, what=f"upload {key!r}")
        self.store, self.key = store, key
        self.content_type, self.public = content_type, public
        self.result: StoredObject

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        super().__exit__(exc_type, exc, tb)
        if exc_type is None:
            meta = {"size": self.size, "sha256": self.sha256, "content_type": self.content_type,
                    "public": self.public}
            self.store._write_meta(self.key, meta)
            self.result = StoredObject(key=self.key, size=self.size, sha256=self.sha256)
            logger.debug("stored %s (%d bytes, sha256 %s)", self.key, self.size, self.sha256)
