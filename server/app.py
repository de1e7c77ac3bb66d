"""The Starlette application: the sync endpoint, health, readiness and metrics.

The lifespan owns every long-lived task: the store's writer and the room evictor
run in its task group, and leaving it flushes the store.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskStatus
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from syncline.adapters.rest.context import RestContext
from syncline.adapters.rest.documents import Documents
from syncline.server.door import Door
from syncline.adapters.rest.feed import FeedHub
from syncline.adapters.rest.routes import EXCEPTION_HANDLERS, rest_routes
from syncline.engine import closecodes

from .admission import Admission, Admitted
from .auth import load_or_create_secret
from .connection import Connection
from .errors import Refused, RoomLimitReached, RoomLoadFailed
from .fanout import Fanout, LocalFanout, create_fanout, describe_fanout
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .rooms import RoomManager
from .settings import Settings
from .store import Store, StoreUnavailable

log = logging.getLogger("syncline.app")

SYNC_PREFIX = b"/v1/sync/"
STORE_FILE = "syncline.sqlite3"


@dataclass
class Relay:
    """Everything one running relay shares between connections."""

    settings: Settings
    secret: str
    store: Store
    rooms: RoomManager
    metrics: Metrics
    feed: FeedHub
    connections: set[Connection] = field(default_factory=set)
    per_tenant: Counter[str] = field(default_factory=Counter)
    closing: bool = False
    fanout: Fanout = field(default_factory=LocalFanout)
    admission: Admission = field(init=False)

    def __post_init__(self) -> None:
        self.admission = Admission(self.secret)

    def shut_down_peers(self) -> None:
        """Tell every peer the relay is going away (close code 1001); end every change feed."""
        self.closing = True
        self.feed.close()
        for connection in list(self.connections):
            connection.abort(closecodes.GOING_AWAY, "going_away")


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time) -> Starlette:
    """The relay application; its lifespan opens the store and runs the relay's tasks.

    ``clock`` (seconds since the epoch) is the time retention is measured against when the
    change feed and idempotency records are pruned: tests pass one that runs ahead.
    """
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        secret = settings.secret or load_or_create_secret(settings.data_dir)
        from .store.factory import create_store  # SQLite unless settings.store is a postgresql:// URL

        store = create_store(settings, settings.data_dir / STORE_FILE)
        store.on_commit = metrics.on_commit
        fanout = create_fanout(settings, metrics)  # the single-node default does nothing (no Redis)
        metrics.fanout_available.set_function(lambda: float(fanout.available))
        if fanout.shared:
            log.info("cluster node sharing rooms", extra={"fanout": describe_fanout(settings), "node": fanout.node_id})
        async with store, anyio.create_task_group() as tg:
            feed = FeedHub()
            rooms = RoomManager(store, settings, metrics, on_change=feed.notify, fanout=fanout)
            app.state.relay = Relay(settings, secret, store, rooms, metrics, feed, fanout=fanout)
            await tg.start(fanout.run)
            app.state.rest = RestContext(settings, app.state.relay.admission, store, Documents(Door(rooms)))
            app.state.feed = feed
            await tg.start(rooms.run_evictions)
            await tg.start(_prune_periodically, store, settings, clock)
            try:
                yield
            finally:
                app.state.relay.shut_down_peers()
                await rooms.close()
                tg.cancel_scope.cancel()

    async def sync_endpoint(websocket: WebSocket) -> None:
        await _serve_peer(websocket.app.state.relay, websocket)

    async def malformed_sync_path(websocket: WebSocket) -> None:
        # A path under the sync prefix that is not tenant/kind/id (after percent-decoding, e.g.
        # acme/cart/a%2Fb or acme/../acme/cart/x): a 4404 close like any other bad name, not
        # Starlette's bare HTTP 403 for an unrouted WebSocket.
        websocket.app.state.relay.metrics.rejected.labels("invalid_document_name").inc()
        await websocket.accept()
        code = closecodes.INVALID_DOCUMENT_NAME
        await websocket.close(code, closecodes.CLOSE_REASONS.get(code, ""))

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        relay: Relay = request.app.state.relay
        try:
            await relay.store.check()
        except StoreUnavailable as exc:
            return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
        if not relay.fanout.available:
            return JSONResponse(
                {"status": "unavailable", "reason": f"fan-out unavailable: {relay.fanout.reason}"}, status_code=503
            )
        return JSONResponse({"status": "ready", "rooms": len(relay.rooms.rooms)})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            WebSocketRoute("/v1/sync/{tenant}/{kind}/{doc_id}", sync_endpoint),
            WebSocketRoute("/v1/sync/{rest:path}", malformed_sync_path),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            *rest_routes(),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )


PRUNE_PERIOD_SECONDS = 3600.0


async def _prune_periodically(
    store: Store, settings: Settings, clock: Callable[[], float],
    *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Drop change-feed events and idempotency records past their retention, at start and hourly."""
    task_status.started()
    while True:
        now = clock()
        try:
            changes, responses = await store.prune(
                changes_before=now - settings.feed_retention_seconds,
                responses_before=now - settings.idempotency_ttl_seconds,
            )
            if changes or responses:
                log.info("pruned the change feed and idempotency records",
                         extra={"changes": changes, "responses": responses})
        except StoreUnavailable as exc:
            log.warning("pruning failed; retrying later", extra={"error": str(exc)})
        await anyio.sleep(PRUNE_PERIOD_SECONDS)


async def _serve_peer(relay: Relay, websocket: WebSocket) -> None:
    """Authenticate, route to the room, run the connection; refusals are close codes."""
    await websocket.accept()
    admitted = _admit(relay, websocket)
    if isinstance(admitted, Refused):
        relay.metrics.rejected.labels(admitted.reason).inc()
        code = REFUSALS[admitted.reason]
        await websocket.close(code, closecodes.CLOSE_REASONS.get(code, ""))
        return
    name, grant = admitted.name, admitted.grant
    if relay.closing:
        await websocket.close(closecodes.GOING_AWAY, closecodes.CLOSE_REASONS[closecodes.GOING_AWAY])
        return
    if relay.per_tenant[grant.tenant] >= relay.settings.max_connections_per_tenant:
        relay.metrics.rejected.labels("too_many_connections").inc()
        await websocket.close(closecodes.TOO_MANY_CONNECTIONS, closecodes.CLOSE_REASONS[closecodes.TOO_MANY_CONNECTIONS])
        return
    if not relay.fanout.available:
        # A cluster node cut off from the others would serve a document that stops
        # changing: send the peer to another node (the client's next URL, or the balancer).
        relay.metrics.rejected.labels("fanout_unavailable").inc()
        await websocket.close(closecodes.FANOUT_UNAVAILABLE, closecodes.CLOSE_REASONS[closecodes.FANOUT_UNAVAILABLE])
        return
    relay.per_tenant[grant.tenant] += 1
    try:
        try:
            room = await relay.rooms.acquire(str(name))
        except RoomLimitReached:
            relay.metrics.rejected.labels("room_limit").inc()
            await websocket.close(closecodes.ROOM_LIMIT, closecodes.CLOSE_REASONS[closecodes.ROOM_LIMIT])
            return
        except (StoreUnavailable, RoomLoadFailed):
            relay.metrics.rejected.labels("store_unavailable").inc()
            await websocket.close(closecodes.STORE_UNAVAILABLE, closecodes.CLOSE_REASONS[closecodes.STORE_UNAVAILABLE])
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
        relay.per_tenant[grant.tenant] -= 1
        if relay.per_tenant[grant.tenant] <= 0:
            del relay.per_tenant[grant.tenant]


REFUSALS: dict[str, int] = {
    "invalid_document_name": closecodes.INVALID_DOCUMENT_NAME,
    "missing_token": closecodes.UNAUTHORIZED,
    "invalid_token": closecodes.UNAUTHORIZED,
    "token_expired": closecodes.TOKEN_EXPIRED,
    "forbidden": closecodes.FORBIDDEN,
}
"""The close code of each admission refusal (a peer is admitted for reading; writes are checked per message)."""


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
