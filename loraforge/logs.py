"""Log setup for every loraforge process: text or JSON lines, loraforge's own level, the job id.

`configure_logging(settings)` is called once by the CLI and by `serve` / `worker`:
LORAFORGE_LOG_LEVEL sets the level of the `loraforge` logger tree (libraries stay at WARNING so
they do not drown it), and LORAFORGE_LOG_FORMAT=json writes one JSON object per line (via
python-json-logger) with `time`, `level`, `logger`, `message` and, while a job is being worked on,
`job_id`. The job id comes from a context variable that `job_context(job_id)` sets around a job's
work, so every log line of that thread (or task) carries it without changing the log calls.
A message is one line of at most MAX_MESSAGE_CHARS (8000) characters, its control characters
escaped (loraforge.textsafe): a file name holding a newline and a fake log line, or an ANSI
escape, cannot forge a line or recolour a terminal. A traceback keeps its lines: only the text
that record's arguments put in the message is changed.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from loraforge.redaction import RedactingFilter
from loraforge.textsafe import clip, escape

CURRENT_JOB: contextvars.ContextVar[str | None] = contextvars.ContextVar("loraforge_job_id", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(job_suffix)s: %(message)s"
HANDLER_NAME = "loraforge"
MAX_MESSAGE_CHARS = 8000


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Tag every log record emitted inside the block (same thread or task) with `job_id`."""
    token = CURRENT_JOB.set(job_id)
    try:
        yield
    finally:
        CURRENT_JOB.reset(token)


def tagged(run: Callable[[str], None]) -> Callable[[str], None]:
    """`run(job_id)` with every log record it emits tagged with that job id."""

    def call(job_id: str) -> None:
        with job_context(job_id):
            run(job_id)

    return call


class _JobFilter(logging.Filter):
    """Adds `job_id` (or None) and a text suffix ` [job ID]` to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        job_id = getattr(record, "job_id", None) or CURRENT_JOB.get()
        record.job_id = job_id
        record.job_suffix = f" [job {job_id}]" if job_id else ""
        return True


class _SafeTextFilter(logging.Filter):
    """The record's message, arguments applied, as one bounded line (see the module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = clip(escape(message), MAX_MESSAGE_CHARS)
        if safe != message:
            record.msg, record.args = safe, None
        return True


def _json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    class _Formatter(JsonFormatter):
        def add_fields(
            self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
        ) -> None:
            super().add_fields(log_data, record, message_dict)
            if not record.job_id:  # type: ignore[attr-defined]  # _JobFilter sets it
                log_data.pop("job_id", None)

    return _Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(job_id)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Route all logging to stderr in `fmt` ("text" | "json"); loraforge's loggers at `level`.

    Idempotent: calling it again replaces the handler it installed before.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.addFilter(_JobFilter())
    handler.addFilter(RedactingFilter())  # URLs lose userinfo and query strings (loraforge.redaction)
    handler.addFilter(_SafeTextFilter())
    handler.setFormatter(_json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("loraforge").setLevel(level)
    # uvicorn's own loggers (start line, access log) propagate to ours when serve passes
    # log_config=None; they keep INFO, LORAFORGE_LOG_LEVEL is about loraforge's own loggers.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.INFO)
