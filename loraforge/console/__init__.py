"""The web console: static HTML, CSS and JavaScript modules served by the API at /console.

No build step and no third-party script: the page is plain ES modules under `static/` that talk
only to the public HTTP API with the key the user pastes (kept in sessionStorage, sent as
`x-api-key`). `STATIC_DIR` is what the route module serves; `ASSET_TYPES` the only file types.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
ASSET_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}
