"""CORS for the relay's HTTP side (REST, SSE, probes, the OpenAPI document), from ``--cors-origin``.

Starlette's :class:`~starlette.middleware.cors.CORSMiddleware`, told what the REST adapter
takes and answers, with one change: a request from an origin that is not allowed gets no
``Access-Control-*`` header at all (Starlette's would still list the allowed methods,
headers and exposed headers to anyone who asks). Tokens travel in ``Authorization`` or
``?token=``, never in cookies, so credentials are not allowed and ``*`` is usable.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Send

from syncline.server.origins import origin_listed

ALLOW_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE")
ALLOW_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "If-Match", "If-None-Match", "Last-Event-ID",
                 "X-Request-ID")
"""What REST and SSE requests send beyond the CORS-safelisted headers."""
EXPOSE_HEADERS = ("ETag", "Location", "Retry-After", "Idempotent-Replayed", "WWW-Authenticate", "Allow",
                  "X-Request-ID")
"""What REST answers carry that a script needs to read (Content-Type is always readable)."""
MAX_AGE_SECONDS = 600


class AllowedOriginsCORS(CORSMiddleware):
    """CORS for a fixed list of origins; others get no ``Access-Control-*`` header."""

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        super().__init__(app, allow_origins=origins, allow_methods=ALLOW_METHODS, allow_headers=ALLOW_HEADERS,
                         expose_headers=EXPOSE_HEADERS, max_age=MAX_AGE_SECONDS)
        self.origins = tuple(origins)

    def is_allowed_origin(self, origin: str) -> bool:
        return origin_listed(origin, self.origins)

    def preflight_response(self, request_headers: Headers) -> Response:
        if self.is_allowed_origin(request_headers["origin"]):
            return super().preflight_response(request_headers)
        return PlainTextResponse("Disallowed CORS origin", status_code=400, headers={"Vary": "Origin"})

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        origin = request_headers.get("origin")
        if message["type"] != "http.response.start" or origin is None or self.is_allowed_origin(origin):
            await super().send(message, send, request_headers)
            return
        # The answer depends on Origin (a cache must not serve it to an allowed one).
        headers = MutableHeaders(scope=message)
        headers["Vary"] = ", ".join([*headers.getlist("Vary"), "Origin"])
        await send(message)


def cors_middleware(origins: Sequence[str]) -> list[Middleware]:
    """The middleware for ``--cors-origin``: none when no origin is configured (CORS off)."""
    return [Middleware(AllowedOriginsCORS, origins=origins)] if origins else []
