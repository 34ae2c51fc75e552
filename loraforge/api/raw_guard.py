"""An ASGI wrapper that refuses, before routing, requests whose path or query the app cannot hold.

A percent-encoded NUL (`%00`) decodes into a string that PostgreSQL text refuses, so a request id,
slug or webhook id carrying one would fail deep in a query; it is answered 400 here instead. The
check looks at the raw bytes only, so it costs one substring search per request.
"""

from __future__ import annotations

from typing import Any

import orjson

Scope = dict[str, Any]


class RawRequestGuard:
    """Wrap `app`; HTTP requests with `%00` in the path or query string get a 400 JSON error."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path") or b""
            where = "path" if b"%00" in raw else "query string" if b"%00" in scope.get("query_string", b"") else ""
            if where:
                await _refuse(send, f"the request's {where} contains a NUL character (%00)")
                return
        await self.app(scope, receive, send)


async def _refuse(send: Any, message: str) -> None:
    body = orjson.dumps({"error": message})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": body})
