"""S3Store: objects in an S3-compatible bucket (AWS, SeaweedFS, MinIO...) through boto3.

Path-style addressing so that any endpoint works; credentials come from boto3's standard chain
(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles, instance roles) unless the settings carry
them. Writes are one PUT, or a multipart upload for large files, which S3 also makes visible
atomically. The sha256 of each write is kept as object metadata. Public objects are marked by an
empty marker object under `.public/` beside the data (SeaweedFS, and AWS buckets with ACLs
disabled, ignore per-object ACLs); the API's /files route serves them without a key.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote, unquote, urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from loraforge.config import Settings
from loraforge.errors import NotFoundError, StorageError, ValidationError
from loraforge.storage.atomic import AtomicWriter
from loraforge.storage.base import CHUNK_BYTES, StoredObject, validate_key
from loraforge.storage.signing import PUBLIC_READ

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

PUBLIC_MARKERS = ".public"
SHA_META = "sha256"
MULTIPART_THRESHOLD = 64 * 1024 * 1024
_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Store:
    """An ObjectStore in `bucket` under `prefix`."""

    def __init__(self, client: Any, bucket: str, prefix: str, endpoint_url: str, api_url: str) -> None:
        self.client: S3Client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url.rstrip("/")
        self.api_url = api_url.rstrip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        url = urlsplit(settings.resolved_storage_url)
        session_args: dict[str, Any] = {}
        if settings.s3_access_key_id and settings.s3_secret_access_key:
            session_args = {"aws_access_key_id": settings.s3_access_key_id,
                            "aws_secret_access_key": settings.s3_secret_access_key.get_secret_value()}
        client = boto3.session.Session(**session_args).client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"max_attempts": 3, "mode": "standard"}),
        )
        endpoint = settings.s3_endpoint_url or f"https://s3.{settings.s3_region}.amazonaws.com"
        store = cls(client, url.netloc, unquote(url.path), endpoint, settings.public_url)
        store.ensure_bucket()
        return store

    def ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) not in _MISSING | {"NoSuchBucket"}:
                raise StorageError(f"cannot reach S3 bucket {self.bucket!r}: {exc}") from None
        except BotoCoreError as exc:
            raise StorageError(f"cannot reach S3 at {self.endpoint_url}: {exc}") from None
        logger.info("creating S3 bucket %s at %s", self.bucket, self.endpoint_url)
        self._call("create bucket", self.bucket, self.client.create_bucket, Bucket=self.bucket)

    # -- helpers -----------------------------------------------------------------------------
    def _full(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _marker(self, key: str) -> str:
        marker = f"{PUBLIC_MARKERS}/{validate_key(key)}"
        return f"{self.prefix}/{marker}" if self.prefix else marker

    def _call(self, action: str, key: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code"))
            if code in _MISSING:
                raise NotFoundError(f"object {key!r} does not exist in storage") from None
            raise StorageError(f"S3 could not {action} {key!r}: {code}") from None
        except BotoCoreError as exc:
            raise StorageError(f"S3 could not {action} {key!r}: {exc}") from None

    # -- writes ------------------------------------------------------------------------------
    def put_file(
        self, key: str, path: Path, *, content_type: str | None = None, public: bool = False
    ) -> StoredObject:
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            while chunk := stream.read(CHUNK_BYTES):
                digest.update(chunk)
        size = path.stat().st_size
        extra: dict[str, Any] = {"Metadata": {SHA_META: digest.hexdigest()}}
        if content_type:
            extra["ContentType"] = content_type
        self._call("upload", key, self.client.upload_file, Filename=str(path), Bucket=self.bucket,
                   Key=self._full(key), ExtraArgs=extra,
                   Config=TransferConfig(multipart_threshold=MULTIPART_THRESHOLD))
        self.set_public(key, public)
        return StoredObject(key=key, size=size, sha256=digest.hexdigest())

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str | None = None, public: bool = False
    ) -> StoredObject:
        sha = hashlib.sha256(data).hexdigest()
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        self._call("upload", key, self.client.put_object, Bucket=self.bucket, Key=self._full(key),
                   Body=data, Metadata={SHA_META: sha}, **extra)
        self.set_public(key, public)
        return StoredObject(key=key, size=len(data), sha256=sha)

    def put_stream(
        self, key: str, stream: BinaryIO, max_bytes: int | None, *, content_type: str | None = None,
        public: bool = False,
    ) -> StoredObject:
        # spool to disk first: the cap is enforced before anything reaches the bucket
        with tempfile.TemporaryDirectory(prefix="loraforge-s3-") as tmp:
            spool = Path(tmp) / "object"
            with AtomicWriter(spool, max_bytes, what=f"upload {key!r}") as out:
                while chunk := stream.read(CHUNK_BYTES):
                    out.write(chunk)
            return self.put_file(key, spool, content_type=content_type, public=public)

    # -- reads -------------------------------------------------------------------------------
    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self._call("read", key, self.client.head_object, Bucket=self.bucket,
                                              Key=self._full(key))
        except NotFoundError:
            return None
        return head

    def open_read(self, key: str) -> BinaryIO:
        response = self._call("read", key, self.client.get_object, Bucket=self.bucket, Key=self._full(key))
        return closing(response["Body"])  # type: ignore[return-value]  # `with` on it yields the body

    def get_bytes(self, key: str) -> bytes:
        with self.open_read(key) as body:
            return body.read()

    def get_file(self, key: str, dest: Path) -> Path:
        with self.open_read(key) as body, AtomicWriter(dest) as out:
            while chunk := body.read(CHUNK_BYTES):
                out.write(chunk)
        return dest

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int | None:
        head = self._head(key)
        return None if head is None else int(head["ContentLength"])

    def content_type(self, key: str) -> str | None:
        head = self._head(key)
        return None if head is None else head.get("ContentType")

    def sha256(self, key: str) -> str:
        head = self._head(key)
        if head is None:
            raise NotFoundError(f"object {key!r} does not exist in storage")
        recorded: str | None = head.get("Metadata", {}).get(SHA_META)
        if recorded:
            return recorded
        # uploaded by a client through a pre-signed URL: hash the bytes themselves
        digest = hashlib.sha256()
        with self.open_read(key) as body:
            while chunk := body.read(CHUNK_BYTES):
                digest.update(chunk)
        return digest.hexdigest()

    def delete(self, key: str) -> None:
        self._call("delete", key, self.client.delete_object, Bucket=self.bucket, Key=self._full(key))
        self._call("delete", key, self.client.delete_object, Bucket=self.bucket, Key=self._marker(key))

    def list(self, prefix: str) -> list[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=root + prefix):
                for item in page.get("Contents", []):
                    key = item["Key"][len(root):]
                    if not any(part.startswith(".") for part in key.split("/")):
                        keys.append(key)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"S3 could not list {prefix!r}: {exc}") from None
        return sorted(keys)

    def is_public(self, key: str) -> bool:
        try:
            self._call("read", key, self.client.head_object, Bucket=self.bucket, Key=self._marker(key))
            return True
        except NotFoundError:
            return False

    def set_public(self, key: str, public: bool) -> None:
        """Mark `key` public (a marker object); may precede the object, as for a public upload."""
        if public:
            self._call("mark public", key, self.client.put_object, Bucket=self.bucket,
                       Key=self._marker(key), Body=b"")
        else:
            self._call("mark private", key, self.client.delete_object, Bucket=self.bucket,
                       Key=self._marker(key))

    # -- links -------------------------------------------------------------------------------
    def object_url(self, key: str) -> str:
        return f"{self.endpoint_url}/{self.bucket}/{quote(self._full(key))}"

    def public_url(self, key: str) -> str:
        return f"{self.api_url}/files/{quote(validate_key(key))}"

    def key_from_url(self, url: str) -> str | None:
        try:
            parts = urlsplit(url)
        except ValueError:  # 'http://[::1' and the like: not one of ours
            return None
        for base in (f"{self.endpoint_url}/{self.bucket}/" + (f"{self.prefix}/" if self.prefix else ""),
                     f"{self.api_url}/files/"):
            base_parts = urlsplit(base)
            if (parts.scheme, parts.netloc) == (base_parts.scheme, base_parts.netloc) and \
                    unquote(parts.path).startswith(unquote(base_parts.path)):
                try:
                    return validate_key(unquote(parts.path)[len(unquote(base_parts.path)):])
                except ValidationError:
                    return None
        return None

    def presigned_get(self, key: str, expires_s: int, *, media_type: str | None = None,
                      disposition: str | None = None) -> str:
        """A GET link; `media_type` / `disposition` make S3 answer with those headers, whatever
        Content-Type the object was uploaded with (S3's response-content-type overrides)."""
        params = {"Bucket": self.bucket, "Key": self._full(key)}
        if media_type:
            params["ResponseContentType"] = media_type
        if disposition:
            params["ResponseContentDisposition"] = disposition
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s)

    def presigned_head(self, key: str, expires_s: int) -> str:
        """Like presigned_get for HEAD requests (S3 signs the method, so a GET link cannot HEAD)."""
        return self.client.generate_presigned_url(
            "head_object", Params={"Bucket": self.bucket, "Key": self._full(key)}, ExpiresIn=expires_s)

    def presigned_put(self, key: str, expires_s: int, content_type: str | None, public: bool) -> str:
        params: dict[str, str] = {"Bucket": self.bucket, "Key": self._full(key)}
        if content_type:
            params["ContentType"] = content_type
        if public:
            # the client must send `x-amz-acl: public-read` (the seed's curl does); the marker
            # makes it public here too, since not every S3 server honours object ACLs
            params["ACL"] = PUBLIC_READ
            self.set_public(key, True)
        return self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_s)
