"""The playground: a static page at `/` that uses only the public `/v1` API with the user's key.

Nothing here is authenticated: the page holds no data, it asks the user for a key and sends it as
`Authorization: Bearer` on every `/v1` call, so it can do exactly what the SDKs can. Its own files
live in `static/`; the three libraries it imports (markdown, sanitiser, highlighter) come from
`node_modules/`, installed by `make setup` with `npm ci` from the pinned `package-lock.json`, and
only the files named in `VENDOR` are served from there.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
NODE_MODULES = HERE / "node_modules"

# URL name under /playground/vendor/ → file inside node_modules (pinned by package-lock.json).
VENDOR: dict[str, str] = {
    "marked.js": "marked/lib/marked.esm.js",
    "purify.js": "dompurify/dist/purify.es.mjs",
    "highlight.js": "@highlightjs/cdn-assets/es/core.min.js",
    "python.js": "@highlightjs/cdn-assets/es/languages/python.min.js",
    "highlight.css": "@highlightjs/cdn-assets/styles/github.min.css",
}

# No inline script or style, nothing from another origin; images may be blob: URLs the page made
# from file content it fetched with the key.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
MEDIA_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css"}


class _Assets(StaticFiles):
    """The page's own files, with the security headers and a JavaScript type modules accept."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        media_type = MEDIA_TYPES.get(Path(full_path).suffix)
        if media_type is not None:
            response.headers["content-type"] = media_type
        response.headers.update(SECURITY_HEADERS)
        return response


async def _index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=SECURITY_HEADERS)


async def _vendor(request: Request) -> Response:
    relative = VENDOR.get(request.path_params["name"])
    if relative is None:
        raise HTTPException(404, "No such playground library.")
    path = NODE_MODULES / relative
    if not path.is_file():
        raise HTTPException(503, "The playground's libraries are not installed; run `make setup`.")
    media_type = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
    return FileResponse(path, media_type=media_type, headers=SECURITY_HEADERS)


def mount(app: FastAPI) -> None:
    """Serve the page at `/` and its files under `/playground/`; `/v1` and `/healthz` are untouched."""
    app.router.routes.extend(
        [
            Route("/", _index, methods=["GET", "HEAD"], include_in_schema=False),
            Route("/playground/vendor/{name}", _vendor, methods=["GET", "HEAD"], include_in_schema=False),
            Mount("/playground", app=_Assets(directory=STATIC), name="playground"),
        ]
    )
