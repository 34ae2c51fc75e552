"""The JSON response class of the API: orjson renders the list and details bodies several times
faster than the standard library, which is most of the cost of a 100-row list."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class JsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
