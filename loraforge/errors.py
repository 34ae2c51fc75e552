"""The one exception hierarchy of loraforge.

Domain code raises these and never HTTP errors; the API's single handler maps each class to a
status code and renders `{"error": message}`. The CLI prints the message on one line and exits
non-zero. Messages are written for the person who sent the request: they name the field or file
and say what to do. URLs in messages lose their userinfo and query string (loraforge.redaction).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from loraforge.redaction import redact_urls


def describe_errors(errors: Iterable[Mapping[str, Any]], prefix: str = "",
                    sources: Mapping[str, str] | None = None) -> str:
    """pydantic's errors as `field: what is wrong` (at most 5), joined with '; '.

    The field is `prefix` + the error's location (FastAPI's `body`/`query` parts dropped), or
    `sources[location]` when given; pydantic's `Value error, ` prefix is dropped.
    """
    parts = []
    for err in list(errors)[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
        field = (sources or {}).get(loc) or ".".join(p for p in (prefix, loc) if p)
        msg = "is required" if err.get("type") == "missing" else str(err.get("msg", "is invalid"))
        msg = msg.removeprefix("Value error, ")
        parts.append(f"{field}: {msg}" if field else msg)
    return "; ".join(parts) or "invalid request"


class LoraforgeError(Exception):
    """Root of every error loraforge raises on purpose."""

    status_code = 400

    def __init__(self, message: str) -> None:
        message = redact_urls(message)  # a URL's credentials and signature never reach a reader
        super().__init__(message)
        self.message = message


class ConfigError(LoraforgeError):
    """A setting is missing, unsafe or contradicts another; raised at start."""

    status_code = 500


class ValidationError(LoraforgeError):
    """A request field or hyper-parameter is invalid; the message names the field."""

    status_code = 400


class AuthError(LoraforgeError):
    """The `x-api-key` header is missing or unknown."""

    status_code = 401


class ForbiddenError(LoraforgeError):
    """The key is valid but may not touch this resource."""

    status_code = 403


class NotFoundError(LoraforgeError):
    """An id, slug or object does not exist (or is not visible to this key)."""

    status_code = 404


class ConflictError(LoraforgeError):
    """The resource is in a state that forbids the request (e.g. a model not yet AVAILABLE)."""

    status_code = 409


class PayloadTooLargeError(LoraforgeError):
    """A body, upload or remote file is over its size cap."""

    status_code = 413


class UnsafeURLError(ValidationError):
    """A URL resolves to a loopback, private, link-local or metadata address (the SSRF guard)."""


class DownloadError(LoraforgeError):
    """A remote file could not be fetched (unreachable, wrong status, no Content-Length...)."""

    status_code = 400


class DatasetError(LoraforgeError):
    """The dataset is unusable: hostile ZIP, too few images, corrupt files..."""

    status_code = 400


class StorageError(LoraforgeError):
    """The object store failed or an object is missing."""

    status_code = 502


class TrainingError(LoraforgeError):
    """Training could not run or finish (out of memory, NaN loss, missing weights...)."""

    status_code = 500


class JobCancelled(LoraforgeError):
    """Raised inside the worker when a job was cancelled; the job ends CANCELLED."""

    status_code = 409


class InferenceError(LoraforgeError):
    """A model could not be loaded or produced no usable image (LoRA mismatch, NaN output...)."""

    status_code = 500


class ServiceBusyError(LoraforgeError):
    """The service cannot take the request now (a queue is full, the GPU is training); retry later.

    `retry_after_s` is the suggested wait in seconds, sent as the `Retry-After` header.
    """

    status_code = 503

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, int(retry_after_s))


class QuotaExceededError(LoraforgeError):
    """A key is over one of its quotas (see loraforge.usecases.quotas); retry after `retry_after_s`."""

    status_code = 429

    def __init__(self, quota: str, message: str, retry_after_s: int) -> None:
        super().__init__(f"quota {quota}: {message}")
        self.quota = quota
        self.retry_after_s = retry_after_s
