"""FastAPI dependencies: the app's services, the settings, the object store and the caller's identity.

`ServicesDep` is how a route reaches anything the process holds (loraforge.api.services); the
others are its parts. Authentication is the `x-api-key` header, checked as one sha256 and one
indexed lookup. Known keys are remembered in the services' key cache (loraforge.api.key_cache:
cleared at once when a key is revoked) so the hot read endpoints spend no database round trip on
auth; only keys that exist are cached, so guessing fills nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from loraforge.api.services import Services
from loraforge.config import Settings
from loraforge.db.accounts import hash_key, user_id_for_key
from loraforge.errors import AuthError
from loraforge.storage.base import ObjectStore

api_key_header = APIKeyHeader(name="x-api-key", auto_error=False, description="Your loraforge API key")


@dataclass(frozen=True)
class Caller:
    """Who sent the request: the user owning the `x-api-key`."""

    user_id: str


async def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]  # set once by create_app's lifespan; async: no thread hop per request


ServicesDep = Annotated[Services, Depends(get_services)]


def get_settings(services: ServicesDep) -> Settings:
    return services.settings


def get_store(services: ServicesDep) -> ObjectStore:
    return services.store


async def current_user(services: ServicesDep, api_key: Annotated[str | None, Security(api_key_header)]) -> Caller:
    if not api_key:
        raise AuthError("x-api-key: header is missing; send your API key as `x-api-key: KEY`")
    cache = services.key_cache
    digest = hash_key(api_key)
    hit = cache.get(digest)
    if hit is not None:
        return Caller(hit)
    user_id = await services.run_db(lambda session: user_id_for_key(session, api_key))
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
CurrentUser = Annotated[Caller, Depends(current_user)]
