"""The pages the relay serves to browsers: the storefront demo at ``/demo/`` and the API docs at ``/v1/docs/``.

Both are static files shipped inside the package (``syncline/app/static/``), built from
TypeScript in ``adapters/js`` and committed, so that ``pip install`` and ``syncline serve``
are enough: no Node, no CDN. ``/`` redirects to the demo.

Every file is sent with ``Cache-Control: no-cache`` and its ``ETag``: a browser keeps it
and revalidates on each use (a 304 costs one round trip), so an upgraded relay's new
bundle is used at once, whatever its file names.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

from syncline.server.serve import Page

STATIC = Path(__file__).resolve().parent / "static"
DEMO_DIR = STATIC / "demo"
DOCS_DIR = STATIC / "docs"
DEMO_PATH = "/demo/"
DOCS_PATH = "/v1/docs/"
BANNER_PAGES = (Page("API docs", DOCS_PATH), Page("Demo", DEMO_PATH, takes_token=True))
"""The pages ``syncline serve`` announces; the demo reads ``#token=...&tenant=...``."""

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".wasm": "application/wasm",
    ".txt": "text/plain; charset=utf-8",
}
"""Content types by extension, fixed here rather than left to the host's ``mimetypes`` tables
(which differ between systems: ``.js`` is ``application/javascript`` on some, unknown on others)."""


class PageFiles(StaticFiles):
    """:class:`StaticFiles` with fixed content types, ``no-cache`` and ``nosniff``."""

    def file_response(self, full_path: PathLike, stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        if isinstance(response, FileResponse):
            content_type = CONTENT_TYPES.get(Path(os.fspath(full_path)).suffix.lower(), "application/octet-stream")
            response.media_type = content_type
            response.headers["Content-Type"] = content_type
        return response


async def _to_demo(request: Request) -> Response:
    return RedirectResponse(DEMO_PATH, status_code=307)


def page_routes() -> list[BaseRoute]:
    """``/`` (to the demo), ``/demo/`` and ``/v1/docs/``; ``/demo`` and ``/v1/docs`` redirect to
    the path with a slash, so that the pages' relative addresses resolve."""
    return [
        Route("/", _to_demo, methods=["GET", "HEAD"]),
        Mount(DEMO_PATH.rstrip("/"), PageFiles(directory=DEMO_DIR, html=True), name="demo"),
        Mount(DOCS_PATH.rstrip("/"), PageFiles(directory=DOCS_DIR, html=True), name="docs"),
    ]
