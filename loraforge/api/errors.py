"""The one place errors become HTTP responses: every failure is `{"error": "..."}`.

LoraforgeError subclasses carry their own status code (a quota's 429 and a busy service's 503 add
`Retry-After`, the 429 names the quota too); FastAPI's own validation errors and
routing errors (404 unknown path, 405 wrong method) are rendered the same way; a lost database
connection is a 503 the client may retry; a value the database refuses (DataError: a NUL
character, a number out of range) is a 400, the net behind the request checks; anything unexpected
is logged with its traceback and answered 500 `{"error": "internal error"}` without leaking it.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from loraforge.api.responses import JsonResponse
from loraforge.errors import LoraforgeError, QuotaExceededError, ServiceBusyError, describe_errors

logger = logging.getLogger(__name__)


def error_response(status_code: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status_code=status_code)


async def _loraforge_error(request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, LoraforgeError)
    if exc.status_code >= 500 and not isinstance(exc, ServiceBusyError):  # busy is expected, not a failure
        logger.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    if isinstance(exc, QuotaExceededError):
        return JsonResponse({"error": exc.message, "quota": exc.quota}, status_code=exc.status_code,
                            headers={"Retry-After": str(exc.retry_after_s)})
    if isinstance(exc, ServiceBusyError):
        return JsonResponse({"error": exc.message}, status_code=exc.status_code,
                            headers={"Retry-After": str(exc.retry_after_s)})
    return error_response(exc.status_code, exc.message)


async def _validation_error(request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, describe_errors(exc.errors()))


async def _http_error(request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and message == "Not Found":
        message = f"no endpoint {request.method} {request.url.path}"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow") or (exc.headers or {}).get("allow")
        message = f"{request.method} is not allowed on {request.url.path}" + (f"; use {allowed}" if allowed else "")
    return JsonResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


async def _database_unavailable(request: Request, exc: Exception) -> JsonResponse:
    logger.error("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, "the database is unavailable; retry in a moment")


async def _database_refused(request: Request, exc: Exception) -> JsonResponse:
    logger.warning("database refused a value on %s %s: %s", request.method, request.url.path, exc)
    return error_response(400, "a value of the request cannot be stored (a NUL character or a number out of range)")


async def _unexpected_error(request: Request, exc: Exception) -> JsonResponse:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal error; the server log has the details")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LoraforgeError, _loraforge_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(DataError, _database_refused)
    app.add_exception_handler(Exception, _unexpected_error)
