"""The relay's own routes: the y-websocket sync endpoint, health, readiness and metrics.

The routes serve the :class:`~syncline.server.relay.Relay` that the application's lifespan
keeps in ``app.state.relay`` (:func:`relay_of`): the relay exists only while the
lifespan runs, the routes from the moment the application is built.
"""

from __future__ import annotations

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from syncline.engine import closecodes

from .access import note_cause
from .admission import Admitted
from .connection import Connection
from .errors import Refused, RoomLimitReached, RoomLoadFailed
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .origins import websocket_origin_allowed
from .relay import Relay
from .store import StoreUnavailable

SYNC_PREFIX = b"/v1/sync/"


def relay_of(app: Starlette) -> Relay:
    """The relay ``app``'s lifespan is running."""
    relay: Relay = app.state.relay
    return relay


def sync_routes() -> list[BaseRoute]:
    """``/v1/sync/{tenant}/{kind}/{id}``: one y-websocket peer of one document each."""
    return [
        WebSocketRoute("/v1/sync/{tenant}/{kind}/{doc_id}", _sync_endpoint),
        WebSocketRoute("/v1/sync/{rest:path}", _malformed_sync_path),
    ]


def probe_routes(metrics: Metrics) -> list[BaseRoute]:
    """``/healthz`` (the process answers), ``/readyz`` (store and fan-out usable) and ``/metrics``."""

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", _healthz),
        Route("/readyz", _readyz),
        Route("/metrics", metrics_endpoint),
    ]


async def _sync_endpoint(websocket: WebSocket) -> None:
    await _serve_peer(relay_of(websocket.app), websocket)


async def _malformed_sync_path(websocket: WebSocket) -> None:
    # A path under the sync prefix that is not tenant/kind/id (after percent-decoding, e.g.
    # acme/cart/a%2Fb or acme/../acme/cart/x): a 4404 close like any other bad name, not
    # Starlette's bare HTTP 403 for an unrouted WebSocket.
    relay_of(websocket.app).metrics.rejected.labels("invalid_document_name").inc()
    await websocket.accept()
    await _close(websocket, closecodes.INVALID_DOCUMENT_NAME)


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _readyz(request: Request) -> Response:
    """200 while the store commits within ``--ready-timeout-seconds``, else 503 with the reason.

    A fan-out outage does not make a node unready: writes go on into the store and other
    nodes catch up from it (``"fanout": "degraded"`` and the reason say so)."""
    relay = relay_of(request.app)
    bound = relay.settings.ready_timeout_seconds
    try:
        with anyio.fail_after(bound):
            await relay.store.check()
    except StoreUnavailable as exc:
        return JSONResponse({"status": "unavailable", "reason": f"store unavailable: {exc}"}, status_code=503)
    except TimeoutError:
        reason = f"store unavailable: no answer within {bound:g} s"
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    body: dict[str, object] = {"status": "ready", "rooms": len(relay.rooms.rooms)}
    if relay.fanout.shared:
        body["fanout"] = "ok" if relay.fanout.available else "degraded"
        if not relay.fanout.available:
            body["reason"] = f"fan-out unavailable: {relay.fanout.reason}"
    return JSONResponse(body)


async def _serve_peer(relay: Relay, websocket: WebSocket) -> None:
    """Authenticate, route to the room, run the connection; refusals are close codes."""
    await websocket.accept()
    headers = websocket.headers
    if not websocket_origin_allowed(headers.get("origin"), headers.get("host"), relay.settings.cors_origin):
        # Accepted first, as every refusal is, so that a browser sees the close code.
        relay.metrics.rejected.labels("forbidden_origin").inc()
        note_cause("forbidden_origin", scope=websocket.scope)  # finer than the close code's name, for the log
        await _close(websocket, closecodes.FORBIDDEN)
        return
    admitted = _admit(relay, websocket)
    if isinstance(admitted, Refused):
        relay.metrics.rejected.labels(admitted.reason).inc()
        note_cause(admitted.reason, scope=websocket.scope)  # finer than the close code's name, for the log
        await _close(websocket, REFUSALS[admitted.reason])
        return
    name, grant = admitted.name, admitted.grant
    if relay.closing:
        await _close(websocket, closecodes.GOING_AWAY)
        return
    try:
        slot = relay.slots.take(grant)
    except Refused as full:
        relay.metrics.rejected.labels(full.reason).inc()
        await _close(websocket, REFUSALS[full.reason])
        return
    try:
        try:
            room = await relay.rooms.acquire(str(name))
        except RoomLimitReached:
            relay.metrics.rejected.labels("room_limit").inc()
            await _close(websocket, closecodes.ROOM_LIMIT)
            return
        except (StoreUnavailable, RoomLoadFailed):
            relay.metrics.rejected.labels("store_unavailable").inc()
            await _close(websocket, closecodes.STORE_UNAVAILABLE)
            return
        connection = Connection(websocket, room, grant, relay.settings, relay.metrics)
        relay.connections.add(connection)
        relay.metrics.connections.inc()
        try:
            await connection.run()
        finally:
            relay.connections.discard(connection)
            relay.metrics.connections.dec()
    finally:
        relay.slots.release(slot)


REFUSALS: dict[str, int] = {
    "invalid_document_name": closecodes.INVALID_DOCUMENT_NAME,
    "missing_token": closecodes.UNAUTHORIZED,
    "invalid_token": closecodes.UNAUTHORIZED,
    "token_expired": closecodes.TOKEN_EXPIRED,
    "forbidden": closecodes.FORBIDDEN,
    "process_connections": closecodes.SERVER_FULL,
    "token_connections": closecodes.TOKEN_CONNECTIONS,
    "too_many_connections": closecodes.TOO_MANY_CONNECTIONS,
}
"""The close code of each admission refusal (a peer is admitted for reading; writes are checked
per message)."""


async def _close(websocket: WebSocket, code: int) -> None:
    """Close with ``code`` and its documented reason."""
    await websocket.close(code, closecodes.CLOSE_REASONS.get(code, ""))


def _admit(relay: Relay, websocket: WebSocket) -> Refused | Admitted:
    """The document to serve and its grant, or why the peer is refused."""
    params = websocket.path_params
    try:
        return relay.admission.document(
            websocket.scope.get("raw_path") or websocket.scope["path"].encode(), SYNC_PREFIX,
            (params["tenant"], params["kind"], params["doc_id"]), websocket.headers, websocket.query_params,
            write=False,
        )
    except Refused as refusal:
        return refusal
