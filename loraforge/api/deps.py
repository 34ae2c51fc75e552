"""FastAPI dependencies: the settings, a DB session, the object store and the caller's identity.

Authentication is the `x-api-key` header, checked as one sha256 and one indexed lookup. Known keys
are remembered in `app.state.key_cache` (loraforge.api.key_cache: cleared at once when a key is
revoked) so the hot read endpoints spend no database round trip on auth; only keys that exist are
cached, so guessing fills nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from loraforge.api.key_cache import KeyCache
from loraforge.config import Settings
from loraforge.db.accounts import hash_key, user_id_for_key
from loraforge.errors import AuthError
from loraforge.storage.base import ObjectStore

api_key_header = APIKeyHeader(name="x-api-key", auto_error=False, description="Your loraforge API key")


@dataclass(frozen=True)
class Caller:
    """Who sent the request: the user owning the `x-api-key`."""

    user_id: str


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]  # app.state is untyped


def get_store(request: Request) -> ObjectStore:
    return request.app.state.store  # type: ignore[no-any-return]  # app.state is untyped


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessionmaker() as session:
        yield session


def _lookup(request: Request, key: str) -> str | None:
    with request.app.state.sessionmaker() as session:
        return user_id_for_key(session, key)


async def current_user(request: Request, api_key: Annotated[str | None, Security(api_key_header)]) -> Caller:
    if not api_key:
        raise AuthError("x-api-key: header is missing; send your API key as `x-api-key: KEY`")
    cache: KeyCache = request.app.state.key_cache
    digest = hash_key(api_key)
    hit = cache.get(digest)
    if hit is not None:
        return Caller(hit)
    user_id = await run_in_threadpool(_lookup, request, api_key)
    if user_id is None:
        cache.discard(digest)
        raise AuthError(
            "x-api-key: unknown or revoked API key; create one with `loraforge keys create --name NAME` "
            "against the server's database (`loraforge keys list` shows which database it uses)"
        )
    cache.put(digest, user_id)
    return Caller(user_id)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
SessionDep = Annotated[Session, Depends(get_session)]
CurrentUser = Annotated[Caller, Depends(current_user)]
