"""Object storage: one protocol (`ObjectStore`), a local-disk backend and an S3 backend.

`open_store(settings)` picks the backend from `settings.resolved_storage_url`: `file:///path`
(the default, under DATA_DIR) or `s3://bucket/prefix` (with S3_ENDPOINT_URL for any S3-compatible
server).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from loraforge.config import Settings
from loraforge.errors import ConfigError
from loraforge.storage.base import ObjectStore, StoredObject, validate_key
from loraforge.storage.local import LocalStore

__all__ = ["LocalStore", "ObjectStore", "StoredObject", "local_root", "open_store", "validate_key"]


def local_root(settings: Settings) -> Path | None:
    """The folder of a local-disk store (None for S3); ConfigError for a file:// URL without one."""
    url = urlsplit(settings.resolved_storage_url)
    if url.scheme == "s3":
        return None
    # file:///abs/path, file://localhost/abs/path, or the relative file://./data/storage
    root = unquote(url.path if url.netloc in ("", "localhost") else url.netloc + url.path)
    if not root:
        raise ConfigError("LORAFORGE_STORAGE_URL file:// needs a folder, e.g. file:///srv/loraforge/storage")
    return Path(root)


def open_store(settings: Settings) -> ObjectStore:
    """The store the settings name; its local folder or S3 bucket is created if it does not exist yet."""
    root = local_root(settings)
    if root is None:
        from loraforge.storage.s3 import S3Store  # boto3 is only imported when S3 is used

        return S3Store.from_settings(settings)
    return LocalStore(root, settings.public_url, settings.signing_secret())
