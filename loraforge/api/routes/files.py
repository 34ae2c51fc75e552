"""The /files routes: where the local store's links lead, and public downloads for both stores.

`PUT /files/{key}` accepts an upload through a pre-signed link of the local store: the HMAC
signature, its expiry and the headers it binds (`Content-Type`, `x-amz-acl: public-read`) are
checked before a byte is read, the body is streamed to disk under the size cap and the key's
`upload_bytes` quota and appears atomically or not at all; its size and sha256 are recorded on the
upload's row. `GET`/`HEAD /files/{key}` serve an object to whoever holds a signed link,
or to anyone when the object is public; with the S3 store a public object is answered by a
redirect to a short-lived S3 link, since S3 itself does the serving. Without a signature, a
missing object and a private one get the same 404, so the answer tells nothing about what exists.

Objects are never served with the type their uploader chose: `served_as` fixes it by key (ZIP for
uploads, PNG for samples, octet-stream for the rest), with `X-Content-Type-Options: nosniff` and
`Content-Disposition: attachment`, so an upload named `.html` cannot run as a page of this origin.
Sample PNGs, which only the worker writes, are shown inline for the console.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from starlette.requests import ClientDisconnect

from loraforge.api.bodies import declared_length
from loraforge.api.deps import ServicesDep
from loraforge.errors import ForbiddenError, NotFoundError, PayloadTooLargeError, ValidationError
from loraforge.storage import LocalStore, keys, signing, validate_key
from loraforge.storage.atomic import format_bytes
from loraforge.usecases import finetune_requests as jobs
from loraforge.usecases import quotas

if TYPE_CHECKING:
    from loraforge.storage.s3 import S3Store

logger = logging.getLogger(__name__)

router = APIRouter(tags=["files"])

REDIRECT_EXPIRY_S = 300
NOT_FOUND = "no such file, or it is private: get a time-limited link from /finetune/request/file/download"




def served_as(key: str) -> tuple[str, bool]:
    """(media type, inline?) that `key` is served with, whatever type it was stored with."""
    if keys.is_upload(key):
        return "application/zip", False
    if keys.is_sample_image(key):
        return "image/png", True
    return "application/octet-stream", False


def _disposition(key: str, inline: bool) -> str:
    name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in key.rsplit("/", 1)[-1])
    return f'{"inline" if inline else "attachment"}; filename="{name}"'


def _check_upload_headers(request: Request, grant: signing.SignedGrant) -> str | None:
    """The Content-Type to record, once the request's headers match what the link was signed for."""
    content_type = request.headers.get("content-type", "").strip() or None
    acl = request.headers.get("x-amz-acl", "").strip()
    if grant.content_type and (content_type or "").lower() != grant.content_type.lower():
        raise ForbiddenError(
            f"this upload link was signed for Content-Type {grant.content_type!r}; "
            f"send the header 'Content-Type: {grant.content_type}'"
        )
    if grant.acl and acl != grant.acl:
        raise ForbiddenError(f"this upload link is public: send the header 'x-amz-acl: {grant.acl}'")
    if acl and not grant.acl:
        raise ForbiddenError(
            f"this upload link is private and was not signed for 'x-amz-acl: {acl}'; "
            "ask for a pre-signed URL with \"public\": true, or drop the header"
        )
    return content_type or grant.content_type or None


@router.put("/files/{key:path}", include_in_schema=False)
async def upload(key: str, request: Request, services: ServicesDep) -> Response:
    store, settings = services.store, services.settings
    if not isinstance(store, LocalStore):
        raise NotFoundError("uploads go straight to S3 with this service's storage; use the presigned_url")
    validate_key(key)
    grant = signing.verify(store.secret, "PUT", key, dict(request.query_params))
    content_type = _check_upload_headers(request, grant)
    cap = settings.max_upload_bytes
    declared = declared_length(request)
    if declared is not None and declared > cap:
        raise PayloadTooLargeError(f"the upload is {format_bytes(declared)}, over the {format_bytes(cap)} limit")
    owner = keys.upload_owner(key)
    left = cap if owner is None else await services.run_db(
        lambda s: quotas.upload_bytes_left(s, settings, owner, key))
    if left < cap and declared is not None and declared > left:
        raise quotas.upload_over_quota(settings, left)
    try:
        with store.writer(key, min(cap, left), content_type=content_type, public=bool(grant.acl)) as out:
            async for chunk in request.stream():
                out.write(chunk)
    except ClientDisconnect:
        raise ValidationError("the upload was interrupted before the whole file arrived; nothing was stored") \
            from None
    except PayloadTooLargeError:
        if left < cap:
            raise quotas.upload_over_quota(settings, left) from None
        raise
    if owner is not None:
        await services.run_db(lambda s: jobs.record_upload(s, key, out.size, out.sha256))
    logger.info("stored upload %s (%d bytes, sha256 %s)", key, out.size, out.sha256)
    return Response(status_code=200, headers={"ETag": f'"{out.sha256}"', "x-loraforge-sha256": out.sha256})


@router.api_route("/files/{key:path}", methods=["GET", "HEAD"], include_in_schema=False)
def download(key: str, request: Request, services: ServicesDep) -> Response:
    store = services.store
    validate_key(key)
    signed = "signature" in request.query_params
    if signed:
        if not isinstance(store, LocalStore):
            raise ForbiddenError("this link was not issued by this service's storage")
        signing.verify(store.secret, "GET", key, dict(request.query_params))
    if not store.exists(key) or (not signed and not store.is_public(key)):
        raise NotFoundError(NOT_FOUND)
    media_type, inline = served_as(key)
    if not isinstance(store, LocalStore):
        s3 = cast("S3Store", store)  # the one other backend; imported for the checker only (boto3 is slow)
        if request.method == "HEAD":
            return RedirectResponse(s3.presigned_head(key, REDIRECT_EXPIRY_S), status_code=307)
        link = s3.presigned_get(key, REDIRECT_EXPIRY_S, media_type=media_type,
                                   disposition=_disposition(key, inline))
        return RedirectResponse(link, status_code=307)
    headers = {"X-Content-Type-Options": "nosniff", "Content-Disposition": _disposition(key, inline)}
    return FileResponse(store.path_of(key), media_type=media_type, headers=headers)
