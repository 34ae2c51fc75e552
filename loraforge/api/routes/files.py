"""The /files routes: where the local store's links lead, and public downloads for both stores.

`PUT /files/{key}` accepts an upload through a pre-signed link of the local store: the HMAC
signature, its expiry and the headers it binds (`Content-Type`, `x-amz-acl: public-read`) are
checked before a byte is read, the body is streamed to disk under the size cap and appears
atomically or not at all. `GET`/`HEAD /files/{key}` serve an object to whoever holds a signed link,
or to anyone when the object is public; with the S3 store a public object is answered by a
redirect to a short-lived S3 link, since S3 itself does the serving.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from starlette.requests import ClientDisconnect

from loraforge.errors import ForbiddenError, NotFoundError, PayloadTooLargeError, ValidationError
from loraforge.storage import LocalStore, signing, validate_key
from loraforge.storage.atomic import format_bytes

logger = logging.getLogger(__name__)

router = APIRouter(tags=["files"])

REDIRECT_EXPIRY_S = 300


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
async def upload(key: str, request: Request) -> Response:
    store, settings = request.app.state.store, request.app.state.settings
    if not isinstance(store, LocalStore):
        raise NotFoundError("uploads go straight to S3 with this service's storage; use the presigned_url")
    validate_key(key)
    grant = signing.verify(store.secret, "PUT", key, dict(request.query_params))
    content_type = _check_upload_headers(request, grant)
    cap = settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise PayloadTooLargeError(
            f"the upload is {format_bytes(int(declared))}, over the {format_bytes(cap)} limit"
        )
    try:
        with store.writer(key, cap, content_type=content_type, public=bool(grant.acl)) as out:
            async for chunk in request.stream():
                out.write(chunk)
    except ClientDisconnect:
        raise ValidationError("the upload was interrupted before the whole file arrived; nothing was stored") \
            from None
    logger.info("stored upload %s (%d bytes, sha256 %s)", key, out.size, out.sha256)
    return Response(status_code=200, headers={"ETag": f'"{out.sha256}"', "x-loraforge-sha256": out.sha256})


@router.api_route("/files/{key:path}", methods=["GET", "HEAD"], include_in_schema=False)
def download(key: str, request: Request) -> Response:
    store = request.app.state.store
    validate_key(key)
    signed = "signature" in request.query_params
    if signed:
        if not isinstance(store, LocalStore):
            raise ForbiddenError("this link was not issued by this service's storage")
        signing.verify(store.secret, "GET", key, dict(request.query_params))
    if not store.exists(key):
        raise NotFoundError(f"file {key!r} does not exist")
    if not signed and not store.is_public(key):
        raise ForbiddenError(
            "this file is private: get a time-limited link from /finetune/request/file/download"
        )
    if not isinstance(store, LocalStore):
        sign = store.presigned_head if request.method == "HEAD" else store.presigned_get
        return RedirectResponse(sign(key, REDIRECT_EXPIRY_S), status_code=307)
    return FileResponse(
        store.path_of(key),
        media_type=store.content_type(key) or "application/octet-stream",
        filename=key.rsplit("/", 1)[-1],
    )
