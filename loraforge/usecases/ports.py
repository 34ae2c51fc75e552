"""What use-cases ask of the process that runs them, as types, so they never import the HTTP layer.

`RunDb` is the shape of the API's one "database work in a worker thread" helper
(loraforge.api.services.Services.run_db): `await run_db(work, readonly=...)` runs `work(session)`
with a short-lived session on a thread, so blocking database I/O never holds the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from sqlalchemy.orm import Session

T = TypeVar("T")


class RunDb(Protocol):
    async def __call__(self, work: Callable[[Session], T], *, readonly: bool = False) -> T: ...
