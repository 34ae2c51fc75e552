"""Atomic file writes: a temp file beside the target, fsync, rename, hashing as it goes.

Used by the local store and by the safe downloader so that a reader never sees half a file: the
temp file has a dotted name in the target's own directory (a rename within one filesystem is
atomic), is fsynced before the rename, and is removed if anything goes wrong, including the size
cap being crossed.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from loraforge.errors import PayloadTooLargeError

MAKE_FOLDER_TRIES = 3  # a concurrent delete can prune an empty folder just made (LocalStore.delete)


def fsync_dir(path: Path) -> None:
    """Persist a rename: fsync the directory entry (best effort where directories can't be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def format_bytes(n: int) -> str:
    """Sizes in messages, e.g. '250 MB' (MB = 2**20 bytes, as the size settings use)."""
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.0f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"


class AtomicWriter:
    """Context manager: write chunks, then on a clean exit the file appears whole at `target`.

    `max_bytes` caps what may be written; crossing it raises PayloadTooLargeError (with `what`
    naming the thing in the message) and leaves nothing behind.
    """

    def __init__(self, target: Path, max_bytes: int | None = None, what: str | None = None) -> None:
        self.target = target
        self.max_bytes = max_bytes
        self.what = what or target.name
        self.size = 0
        self._hash = hashlib.sha256()
        self._tmp: Path | None = None
        self._file: BinaryIO | None = None

    def __enter__(self) -> Self:
        self._tmp = self.target.parent / f".{self.target.name}.{secrets.token_hex(6)}.tmp"
        for attempt in range(MAKE_FOLDER_TRIES):
            self.target.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._file = open(self._tmp, "xb")  # closed in __exit__
                break
            except FileNotFoundError:
                # A delete in the same store removed the folder as empty between the two calls.
                if attempt == MAKE_FOLDER_TRIES - 1:
                    raise
        return self

    def write(self, chunk: bytes) -> None:
        assert self._file is not None, "AtomicWriter used outside its with-block"
        self.size += len(chunk)
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise PayloadTooLargeError(
                f"{self.what} is over the {format_bytes(self.max_bytes)} limit"
            )
        self._hash.update(chunk)
        self._file.write(chunk)

    def restart(self) -> None:
        """Drop what was written so far (a download that must begin again from its first byte)."""
        assert self._file is not None, "AtomicWriter used outside its with-block"
        self._file.seek(0)
        self._file.truncate()
        self.size = 0
        self._hash = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._file is not None and self._tmp is not None
        try:
            if exc_type is None:
                self._file.flush()
                os.fsync(self._file.fileno())
            self._file.close()
            if exc_type is None:
                os.replace(self._tmp, self.target)
                fsync_dir(self.target.parent)
        finally:
            if self._tmp.exists():
                self._tmp.unlink()
