"""The local cache of LoRA files: a job's `cloud_storage_url` becomes a path the runner can load.

The store may be S3, so a LoRA is fetched once into `data_dir/lora-cache/<store key>` and reused
by later requests. Fetches go to a unique temporary name and are renamed into place, so two
requests fetching the same file at once never see half of it. When the job recorded the file's
sha256, the download is checked against it and a mismatch is refused rather than served.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from pathlib import Path

from loraforge.config import Settings
from loraforge.errors import StorageError
from loraforge.storage.base import ObjectStore

logger = logging.getLogger(__name__)

CACHE_DIR = "lora-cache"


def fetch_lora(store: ObjectStore, settings: Settings, url: str, *, sha256: str | None = None) -> Path:
    """A local copy of the LoRA at `url` (an object URL of `store`), fetched if not cached."""
    key = store.key_from_url(url)
    if key is None:
        raise StorageError(f"the model file {url} is not in this service's storage; deploy the job again")
    root = (settings.data_dir / CACHE_DIR).resolve()
    dest = (root / key).resolve()
    if not dest.is_relative_to(root):
        raise StorageError(f"the model file key {key!r} points outside the LoRA cache")
    verified = dest.with_name(dest.name + ".sha256")
    if dest.is_file() and (sha256 is None or _read(verified) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
    try:
        store.get_file(key, tmp)
        digest = file_sha256(tmp)
        if sha256 is not None and digest != sha256:
            raise StorageError(
                f"the model file {key} is corrupt: its sha256 {digest[:12]}... differs from the "
                f"recorded {sha256[:12]}...; retrain or re-upload the model"
            )
        os.replace(tmp, dest)
        _write(verified, digest)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("fetched LoRA %s into the local cache", key)
    return dest


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    tmp.write_text(text)
    os.replace(tmp, path)
