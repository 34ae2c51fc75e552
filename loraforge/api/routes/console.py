"""The console's routes: `/` redirects to `/console`, the page and its assets, and the presets it shows.

Assets are read from loraforge.console.STATIC_DIR by plain names only (no sub-folders, no dots
but the extension's), served with a fixed type, `no-cache` (so an upgrade is picked up at once)
and a Content-Security-Policy that lets the page run only its own scripts. Images may come from
any origin (sample links point at the object store) and requests may go anywhere (a pre-signed
upload URL may be an S3 endpoint). `GET /finetune/presets` lists each base model's defaults and
the advance_parameters' bounds so a form can show them; it needs no key.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from loraforge.api.responses import JsonResponse
from loraforge.console import ASSET_TYPES, STATIC_DIR
from loraforge.errors import NotFoundError

router = APIRouter()

ASSET_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}\.[a-z]{2,4}$")
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src * data: blob:; "
        "connect-src *; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
}


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/console", status_code=307)


@router.get("/console", include_in_schema=False)
async def page() -> FileResponse:
    return _asset("index.html")


@router.get("/console/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    return _asset(name)


def _asset(name: str) -> FileResponse:
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    path = STATIC_DIR / name
    if not ASSET_NAME.match(name) or suffix not in ASSET_TYPES or not path.is_file():
        raise NotFoundError(f"no console file {name[:60]!r}")
    return FileResponse(path, media_type=ASSET_TYPES[suffix], headers=HEADERS)


@router.get("/finetune/presets", tags=["finetune"],
            summary="Each base model's training defaults and the advance_parameters' bounds (no key needed)")
async def presets() -> JsonResponse:
    from loraforge.training.parameters import is_advance
    from loraforge.training.presets import PRESETS, AdvanceParameters, TrainSpec, resolve_spec

    keys = [key for key, info in TrainSpec.model_fields.items() if is_advance(info)]
    properties = AdvanceParameters.model_json_schema()["properties"]
    defaults = {name: resolve_spec(name).model_dump(mode="json", include=set(keys)) for name in PRESETS}
    bounds: dict[str, Any] = {key: _bounds(properties.get(key, {})) for key in keys}
    return JsonResponse({"base_models": defaults, "parameters": bounds})


def _bounds(schema: dict[str, Any]) -> dict[str, Any]:
    keep = ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "description",
            "enum", "const")
    if "anyOf" in schema:
        schema = {**schema, **next((s for s in schema["anyOf"] if s.get("type") != "null"), {})}
    return {k: v for k, v in schema.items() if k in keep}
