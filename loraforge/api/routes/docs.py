"""`/docs`: FastAPI's Swagger UI, served without a CDN.

The page is pointed at assets under /docs/assets, served from the pinned `swagger-ui-py` package,
so /docs works on a machine without internet.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from loraforge.errors import NotFoundError

router = APIRouter()

DOCS_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")


def _swagger_dir() -> Path:
    import swagger_ui

    return Path(swagger_ui.__file__).parent / "static"


@router.get("/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="loraforge API",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon-32x32.png",
    )


@router.get("/docs/assets/{name}", include_in_schema=False)
async def docs_asset(name: str) -> FileResponse:
    if name not in DOCS_ASSETS:
        raise NotFoundError(f"no docs asset {name!r}")
    return FileResponse(_swagger_dir() / name, headers={"Cache-Control": "public, max-age=86400"})
