"""Request ids and access log lines: an ASGI middleware around the whole application.

Every HTTP request and WebSocket connection gets a request id: the client's
``X-Request-ID`` when it is 1 to :data:`MAX_REQUEST_ID` visible ASCII characters, else a
generated one. It is echoed in the response's ``X-Request-ID`` header (the WebSocket
handshake's too) and, while the request runs, every log record carries it as
``request_id`` (:func:`install_request_ids`).

When the request ends, one line goes to the ``syncline.access`` logger::

    GET /v1/tenants/{tenant}/carts/{cart_id} 200 3.1ms request_id=... tenant=acme
    WS /v1/sync/{tenant}/{kind}/{doc_id} 4401 0.8ms request_id=... tenant=acme cause=missing_token

The route is the template, never the raw path, and no query string is shown (tokens
travel there). Probes and scrapes (``/healthz``, ``/readyz``, ``/metrics``) are logged
only when they fail. A refusal (a problem answer other than 404, a WebSocket closed with a
44xx or 45xx code, an unexpected error) also names its ``cause``: what the handler noted
(:func:`note_cause`), else the problem type or the close code's name. With the access log
off (``--no-access-log``) only refusals are logged, still one line each. HTTP requests are
also counted in the relay's metrics by route template, method and status.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncline.engine.closecodes import CLOSE_REASONS
from syncline.engine.errors import InvalidDocumentName
from syncline.engine.names import check_part

from .logs import SHOWN
from .metrics import Metrics

log = logging.getLogger("syncline.access")

MAX_REQUEST_ID = 128
HEADER = "x-request-id"
SCOPE_KEY = "syncline.access"
"""Where the request's :class:`Access` is kept in its ASGI scope."""
CLIENT_CLOSED = 499
"""Status logged for a request whose client went away before an answer (nginx's convention)."""
_REQUEST_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_REQUEST_ID}}}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probes and scrapes, every few seconds: logged only when they fail (always counted in the metrics)."""
UNMATCHED = "unmatched"
"""The route label of a request no route matched."""


@dataclass
class Access:
    """What is known about one request while it runs."""

    request_id: str
    status: int | None = None
    close_code: int | None = None
    cause: str | None = None
    detail: str | None = None


_current: ContextVar[Access | None] = ContextVar("syncline_access", default=None)


def current_request_id() -> str | None:
    """The id of the request this code runs for, if any."""
    access = _current.get()
    return access.request_id if access is not None else None


def note_cause(
    cause: str, detail: str | None = None, *, scope: MutableMapping[str, Any] | None = None
) -> bool:
    """Record why the current request, or the connection of ``scope``, is refused; the first note counts.

    ``scope`` is for code that may run in another connection's task (a broadcast closing a
    slow consumer): the connection's own scope names it. ``detail`` is for operators; never a token.
    Returns whether a request or connection is being logged by :class:`AccessLog` (its refusal
    line will carry the cause), so that a caller outside one logs the refusal itself.
    """
    access = scope.get(SCOPE_KEY) if scope is not None else _current.get()
    if not isinstance(access, Access):
        return False
    if access.cause is None:
        access.cause = cause
        access.detail = detail
    return True


def note_close(code: int, *, scope: MutableMapping[str, Any]) -> None:
    """Record the close code a WebSocket's peer ended the connection with, for a receive path
    that does not go through ASGI ``receive`` (where the middleware sees it itself); a code
    recorded earlier (the relay's own close) stands."""
    access = scope.get(SCOPE_KEY)
    if isinstance(access, Access) and access.close_code is None:
        access.close_code = code


def request_id_from(scope: Scope) -> str:
    """The client's ``X-Request-ID`` if it is acceptable, else a new one (32 hex digits)."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


def install_request_ids() -> None:
    """Make every log record made during a request carry ``request_id`` (any handler, any logger)."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "syncline_request_ids", False):
        return

    def record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        access = _current.get()
        if access is not None and "request_id" not in record.__dict__:
            record.request_id = access.request_id
        return record

    record_factory.syncline_request_ids = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record_factory)


class AccessLog:
    """The middleware: request ids, one line per request (or per refusal only), HTTP metrics."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics | None = None,
        enabled: bool = True,
        on_error: Callable[[Request, Exception], Awaitable[Response]] | None = None,
    ) -> None:
        """``on_error`` answers an HTTP request whose handler raised before answering (and
        logs it): answered here, the 500 carries the request's ``X-Request-ID`` like every
        other answer. Without it the error goes on to the server's outermost handler."""
        self.app = app
        self.metrics = metrics
        self.enabled = enabled
        self.on_error = on_error
        install_request_ids()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        access = Access(request_id_from(scope))
        scope[SCOPE_KEY] = access
        reset = _current.set(access)
        header = (b"x-request-id", access.request_id.encode())
        started = time.perf_counter()

        async def observed_send(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                access.status = message["status"]
                headers = MutableHeaders(scope=message)
                if HEADER not in headers:
                    headers.append("X-Request-ID", access.request_id)
            elif kind == "websocket.accept":
                message["headers"] = [*message.get("headers", ()), header]
            elif kind == "websocket.close":
                access.close_code = message.get("code", 1000)
            elif kind == "websocket.http.response.start":
                access.status = message["status"]
            await send(message)

        async def observed_receive() -> Message:
            message = await receive()
            if message["type"] == "websocket.disconnect" and access.close_code is None:
                access.close_code = message.get("code", 1005)
            return message

        failed = True
        try:
            await self.app(scope, receive if scope["type"] == "http" else observed_receive, observed_send)
            failed = False
        except (ClientDisconnect, anyio.get_cancelled_exc_class()) as exc:
            if access.status is None:  # gone before an answer; a stream cut short at shutdown is no refusal
                access.status = CLIENT_CLOSED
                note_cause("client_disconnected" if isinstance(exc, ClientDisconnect) else "cancelled")
            raise
        except Exception as exc:
            answered, access.status = access.status is not None, 500
            note_cause("internal_error")
            if scope["type"] != "http" or answered or self.on_error is None:
                raise  # the outermost handler logs it (and answers 500 if it still can)
            response = await self.on_error(Request(scope), exc)
            await response(scope, receive, observed_send)
            failed = False
        finally:
            self._done(scope, access, time.perf_counter() - started)
            if not failed:  # an error is logged again outside: keep the id on that line
                _current.reset(reset)

    def _done(self, scope: Scope, access: Access, seconds: float) -> None:
        route = _route(scope)
        websocket = scope["type"] == "websocket"
        method = "WS" if websocket else str(scope.get("method", "")).upper()
        if websocket:
            code = access.close_code if access.close_code is not None else access.status or 1006
            refused = 4400 <= code < 4600 or code == 1011
            if refused and access.cause is None:  # the close code's name, as syncline_rejected_total's reason
                name = CLOSE_REASONS.get(code, str(code)).replace("fan-out", "fanout")
                access.cause = name.replace(" ", "_").replace("-", "_")
        else:
            code = access.status or CLIENT_CLOSED
            refused = access.cause is not None and code != 404 or code >= 500
            if self.metrics is not None:
                label = method if method in _METHODS else "other"
                self.metrics.on_http(route, label, code, seconds)
        if not (self.enabled or refused) or route in QUIET_ROUTES and 200 <= code < 300:
            return
        # request_id comes with the record (install_request_ids): this runs before the id is reset
        fields: dict[str, Any] = {"method": method, "route": route, "status": code,
                                  "ms": round(seconds * 1000, 1)}
        tenant = _tenant(scope)
        if tenant is not None:
            fields["tenant"] = tenant
        if refused:
            fields["cause"] = access.cause or f"http_{code}"  # a 5xx that is no problem (/readyz's 503)
            if access.detail:
                fields["detail"] = access.detail
        fields[SHOWN] = ("method", "route", "status", "ms")
        level = logging.WARNING if code >= 500 and not websocket else logging.INFO
        log.log(level, "%s %s %d %.1fms", method, route, code, seconds * 1000, extra=fields)


def _route(scope: Scope) -> str:
    """The template of the route that served the request; for one answered before routing (a CORS
    preflight), of the route its path matches; else :data:`UNMATCHED`."""
    route = scope.get("route")
    if route is None:
        router = getattr(scope.get("app"), "router", None)
        route = next((candidate for candidate in getattr(router, "routes", ())
                      if candidate.matches(scope)[0] != Match.NONE), None)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def _tenant(scope: Scope) -> str | None:
    tenant = (scope.get("path_params") or {}).get("tenant")
    try:
        return check_part("tenant", tenant) if tenant is not None else None
    except InvalidDocumentName:
        return None
