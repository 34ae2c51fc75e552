"""FastAPI dependencies: the settings, a DB session, the object store and the caller's identity.

Authentication is the `x-api-key` header, checked as one sha256 and one indexed lookup. Known keys
are remembered for a short while (`KEY_CACHE_SECONDS`) so the hot read endpoints spend no database
round trip on auth; only keys that exist are cached, so guessing fills nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loraforge.config import Settings
from loraforge.db.accounts import hash_key, user_id_for_key
from loraforge.errors import AuthError
from loraforge.storage.base import ObjectStore

KEY_CACHE_SECONDS = 30.0
KEY_CACHE_MAX = 10_000

api_key_header = APIKeyHeader(name="x-api-key", auto_error=False, description="Your loraforge API key")


@dataclass(frozen=True)
class Caller:
    """Who sent the request: the user owning the `x-api-key`."""

    user_id: str


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_store(request: Request) -> ObjectStore:
    return request.app.state.store  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessionmaker() as session:
        yield session


def _lookup(request: Request, key: str) -> str | None:
    with request.app.state.sessionmaker() as session:
        return user_id_for_key(session, key)


async def current_user(request: Request, api_key: Annotated[str | None, Security(api_key_header)]) -> Caller:
    if not api_key:
        raise AuthError("x-api-key: header is missing; send your API key as `x-api-key: KEY`")
    cache: dict[str, tuple[str, float]] = request.app.state.key_cache
    digest = hash_key(api_key)
    now = time.monotonic()
    hit = cache.get(digest)
    if hit is not None and hit[1] > now:
        return Caller(hit[0])
    user_id = await run_in_threadpool(_lookup, request, api_key)
    if user_id is None:
        cache.pop(digest, None)
        raise AuthError("x-api-key: unknown API key; create one with `loraforge keys create --name NAME`")
    if len(cache) >= KEY_CACHE_MAX:
        cache.clear()
    cache[digest] = (user_id, now + KEY_CACHE_SECONDS)
    return Caller(user_id)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
SessionDep = Annotated[Session, Depends(get_session)]
CurrentUser = Annotated[Caller, Depends(current_user)]
