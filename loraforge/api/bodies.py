"""Reading request bodies the way the seeds send them, within the size cap.

The seeds put JSON bodies on GET requests and form bodies on PUT and GET, and curl users often
forget the Content-Type header, so every seed endpoint reads its fields through `read_fields`:
JSON (with or without the header, also when curl labels it form-urlencoded), URL-encoded or
multipart forms. Anything else, malformed JSON, or a body over `max_request_bytes` is a 4xx
naming the problem, never a 500. Hostile shapes are refused here too, before any other code sees
them: JSON nested deeper than MAX_JSON_DEPTH (the standard library would recurse until
RecursionError; orjson, which parses here, stops at 1024 but serialises only 254 deep), lone
surrogates, and NUL characters (PostgreSQL text cannot hold them).

Routes take their fields as a dependency: `body_model(Model, query=True)` answers the body's
fields (and, with `query`, the same fields from the query string where the body lacks them, for
browsers that cannot send a GET body) validated as `Model`; `body_fields(*known)` answers them as
a dict for routes whose use-case validates each field itself.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from fastapi import Depends, Request
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from loraforge.api.deps import SettingsDep
from loraforge.api.schemas import validate_payload
from loraforge.errors import PayloadTooLargeError, ValidationError
from loraforge.hints import check_known

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# No request of this API nests deeper than advance_parameters' few levels.
MAX_JSON_DEPTH = 32
_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")
M = TypeVar("M", bound=BaseModel)


def declared_length(request: Request) -> int | None:
    """The request's Content-Length in bytes, None when absent; ValidationError when not a number.

    `str.isdigit` would let through digits such as '\u00b2' that int() refuses, so only ASCII
    digits count.
    """
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    if not _ASCII_DIGITS.fullmatch(declared.strip()):
        raise ValidationError("Content-Length: must be a number of bytes")
    return int(declared)


def check_values(value: Any, where: str = "request body", depth: int = 0) -> None:
    """Refuse a parsed body nested deeper than MAX_JSON_DEPTH or holding a NUL character."""
    if depth > MAX_JSON_DEPTH:
        raise ValidationError(f"{where}: nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationError(f"{where}: must not contain NUL characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_values(key, where, depth + 1)
            check_values(item, key if depth == 0 else f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_values(item, where, depth + 1)


def parse_json(body: bytes) -> Any:
    """The JSON value of `body`, checked by `check_values`; ValidationError when it is not JSON."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"request body is not valid JSON: {exc}") from None
    check_values(data)
    return data


async def read_capped(request: Request, max_bytes: int) -> bytes:
    declared = declared_length(request)
    if declared is not None and declared > max_bytes:
        raise PayloadTooLargeError(f"request body is {declared} bytes, over the {max_bytes}-byte cap")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLargeError(f"request body is over the {max_bytes}-byte cap")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # starlette's form parser re-reads the cached body
    return body


async def read_json(request: Request, max_bytes: int, *, empty: str) -> Any:
    """The JSON body of a request that takes JSON only (generation); `empty` is the error for none.

    A body labelled as a form is refused saying so, unless it looks like JSON (`curl -d '{...}'`
    labels JSON as a form).
    """
    body = await read_capped(request, max_bytes)
    if not body.strip():
        raise ValidationError(empty)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in FORM_TYPES and body.lstrip()[:1] != b"{":
        raise ValidationError(f"the request body must be a JSON object (Content-Type: application/json), "
                              f"not {media_type} form fields")
    return parse_json(body)


def _parse_json(body: bytes) -> dict[str, Any]:
    data = parse_json(body)
    if not isinstance(data, dict):
        raise ValidationError('request body must be a JSON object such as {"request_id": "..."}')
    return data


async def read_fields(request: Request, max_bytes: int, known: Iterable[str] | None = None) -> dict[str, Any]:
    """The body's fields as a dict (empty when there is no body).

    With `known`, a field not in it is a ValidationError naming it and the closest known field.
    """
    fields = await _read_fields(request, max_bytes)
    if known is not None:
        check_known(fields, known)
    return fields


async def _read_fields(request: Request, max_bytes: int) -> dict[str, Any]:
    body = await read_capped(request, max_bytes)
    if not body.strip():
        return {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("", "application/json") or content_type.endswith("+json"):
        return _parse_json(body)
    if content_type == "application/x-www-form-urlencoded":
        if body.lstrip()[:1] == b"{":  # `curl --data '{...}'` without a JSON Content-Type
            return _parse_json(body)
        try:
            fields: dict[str, Any] = dict(parse_qsl(body.decode(), keep_blank_values=True, errors="strict"))
        except UnicodeDecodeError:
            raise ValidationError("form body is not valid UTF-8") from None
        check_values(fields)
        return fields
    if content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=0)
        except (HTTPException, MultiPartException, ValueError) as exc:
            detail = getattr(exc, "detail", None) or getattr(exc, "message", None) or str(exc)
            raise ValidationError(f"multipart form body could not be parsed: {detail}") from None
        fields = {}
        for name, value in form.multi_items():
            if not isinstance(value, str):
                raise ValidationError(f"{name}: must be a text field, not a file")
            fields[name] = value
        check_values(fields)
        return fields
    raise ValidationError(
        f"Content-Type: {content_type!r} is not accepted; send application/json or form fields"
    )


def body_model(model: type[M], *, query: bool = False, known: bool = True,
               declared: Callable[..., Any] | None = None) -> Callable[..., Awaitable[M]]:
    """A dependency answering the request's fields validated as `model` (ValidationError naming the field).

    `known`: a body field `model` lacks is refused naming the closest one (else `model` judges).
    `query`: a query parameter `model` lacks is refused likewise, and each field the body lacks is
    taken from the query string. `declared`: a dependency declaring query parameters for the
    OpenAPI document; FastAPI validates them before the body is read, as when a route declares them.
    """
    names = tuple(model.model_fields)

    async def read(request: Request, settings: SettingsDep) -> M:
        if query:
            check_known(request.query_params, names)  # a typo such as ?request_ld= is refused, not ignored
        fields = await read_fields(request, settings.max_request_bytes, known=names if known else None)
        if query:
            for name in names:
                if name not in fields and name in request.query_params:
                    fields[name] = request.query_params[name]
        return validate_payload(model, fields)

    if declared is None:
        return read

    async def read_after_query(request: Request, settings: SettingsDep, _query: None) -> M:
        return await read(request, settings)

    # The annotation is set as an object: FastAPI resolves string annotations against the module's
    # globals, where `declared` (a local) is not.
    read_after_query.__annotations__["_query"] = Annotated[None, Depends(declared)]
    return read_after_query


def body_fields(*known: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    """A dependency answering the body's fields as a dict; a field not in `known` is refused naming the closest."""

    async def read(request: Request, settings: SettingsDep) -> dict[str, Any]:
        return await read_fields(request, settings.max_request_bytes, known=known)

    return read
