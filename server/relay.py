"""The running relay: what its connections share, its hooks, and the lifespan that runs it.

:func:`open_relay` opens the store, starts the fan-out, the room evictor, the hourly
pruning, the cart lifetimes' task (:mod:`.lifetimes`) and the event loop's lag watch
(:mod:`.looplag`) in one task group, and yields
the :class:`Relay`; leaving it tells every peer the
relay is going away (close code 1001), compacts and closes the rooms, stops the tasks and
flushes the store. Whatever runs beside the relay (the REST change feed, say) plugs in
through two hooks, never through the relay knowing it:

- :meth:`Relay.on_change`: a listener called with ``(doc, seq)`` each time a document's
  update is stored (the rooms' change callback calls every listener in turn);
- :meth:`Relay.on_shutdown`: a callback called once when the relay starts shutting down,
  before its peers are closed;
- :meth:`Relay.on_broadcast`: a listener called with ``(tenant, body)`` for each broadcast
  to a tenant (:meth:`Relay.broadcast`), sent here or, in a cluster, on another node.

For the live endpoints the relay answers :meth:`Relay.activity` (what is connected of a
tenant, see :mod:`.live`) and :meth:`Relay.tenant_counts` (the per-tenant gauges).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import msgpack
from anyio.abc import TaskStatus

from syncline.engine import closecodes

from .admission import Admission, ConnectionSlots
from .auth import load_or_create_secret
from .connection import Connection
from .fanout import Fanout, LocalFanout, create_fanout, describe_fanout
from .lifetimes import Lifetimes
from .live import DocFilter, TenantActivity, tenant_activity, tenant_counts
from .looplag import watch_loop_lag
from .metrics import Metrics
from .room import ChangeListener
from .rooms import RoomManager
from .settings import Settings
from .store import Store, StoreUnavailable

log = logging.getLogger("syncline.relay")

STORE_FILE = "syncline.sqlite3"
"""The SQLite store's file in the data directory."""
PRUNE_PERIOD_SECONDS = 3600.0

ShutdownCallback = Callable[[], None]
BroadcastListener = Callable[[str, dict[str, Any]], None]
"""Called with (tenant, body) for each broadcast to a tenant; body is the ``broadcast`` extension message."""


@dataclass
class Relay:
    """Everything one running relay shares between connections, and its hooks."""

    settings: Settings
    secret: str
    store: Store
    metrics: Metrics
    fanout: Fanout = field(default_factory=LocalFanout)
    rooms: RoomManager = field(init=False)
    connections: set[Connection] = field(default_factory=set)
    slots: ConnectionSlots = field(init=False)
    """The WebSocket connections open on this process, per tenant and per token holder."""
    closing: bool = False
    admission: Admission = field(init=False)
    clock: Callable[[], float] = time.time
    lifetimes: Lifetimes = field(init=False)
    _change_listeners: list[ChangeListener] = field(default_factory=list, init=False, repr=False)
    _shutdown_callbacks: list[ShutdownCallback] = field(default_factory=list, init=False, repr=False)
    _broadcast_listeners: list[BroadcastListener] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.admission = Admission(self.secret)
        self.slots = ConnectionSlots(self.settings.max_connections, self.settings.max_connections_per_tenant,
                                     self.settings.max_connections_per_token)
        self.rooms = RoomManager(self.store, self.settings, self.metrics, on_change=self._changed,
                                 fanout=self.fanout, on_broadcast=self._remote_broadcast)
        self.metrics.track_tenants(self.tenant_counts, self.settings.metrics_tenants)
        self.lifetimes = Lifetimes(self.store, self.rooms, self.settings, self.metrics, self.clock)

    def on_change(self, listener: ChangeListener) -> None:
        """Call ``listener(doc, seq)`` each time an update of document ``doc`` is stored as ``seq``.

        Listeners run synchronously in the relay's event loop, in the order they were added;
        they must not block.
        """
        self._change_listeners.append(listener)

    def on_shutdown(self, callback: ShutdownCallback) -> None:
        """Call ``callback()`` once, when the relay starts shutting down, before peers are closed."""
        self._shutdown_callbacks.append(callback)

    def on_broadcast(self, listener: BroadcastListener) -> None:
        """Call ``listener(tenant, body)`` for each broadcast to a tenant, from this node or another.

        Listeners run synchronously in the relay's event loop and must not block."""
        self._broadcast_listeners.append(listener)

    def broadcast(self, tenant: str, body: dict[str, Any]) -> int:
        """Send the extension message ``body`` to ``tenant``'s peers that said ``hello``, here and
        (in a cluster, best effort) on every other node, and hand it to the broadcast listeners.

        Nothing is stored. Returns the number of this node's peers it was queued for."""
        if self.fanout.shared:
            self.fanout.publish_broadcast(tenant, msgpack.packb(body))
        return self._deliver(tenant, body)

    def _remote_broadcast(self, tenant: str, payload: bytes) -> None:
        try:
            body = msgpack.unpackb(payload, raw=False)
        except (ValueError, msgpack.UnpackException) as exc:
            log.warning("ignoring a malformed broadcast from another node", extra={"error": str(exc)})
            return
        if isinstance(body, dict) and body.get("op") == "broadcast":
            self._deliver(tenant, body)

    def _deliver(self, tenant: str, body: dict[str, Any]) -> int:
        reached = sum(connection.notify(body) for connection in list(self.connections)
                      if connection.tenant == tenant)
        for listener in self._broadcast_listeners:
            listener(tenant, body)
        return reached

    def activity(self, tenant: str, allows: DocFilter) -> TenantActivity:
        """What of ``tenant`` is live on this node, counting only the documents ``allows`` accepts."""
        return tenant_activity(tenant, list(self.rooms.rooms.values()), list(self.connections), allows)

    def tenant_counts(self) -> dict[str, tuple[int, int]]:
        """``{tenant: (connections, open rooms)}`` on this node, for every tenant with either."""
        return tenant_counts(list(self.rooms.rooms), dict(self.slots.per_tenant))

    def _changed(self, doc: str, seq: int) -> None:
        self.lifetimes.touch(doc)
        for listener in self._change_listeners:
            listener(doc, seq)

    def shut_down_peers(self) -> None:
        """Tell every peer the relay is going away (close code 1001), after the shutdown callbacks."""
        first = not self.closing
        self.closing = True
        if first:
            for callback in self._shutdown_callbacks:
                callback()
        for connection in list(self.connections):
            connection.abort(closecodes.GOING_AWAY, "going_away")


@asynccontextmanager
async def open_relay(
    settings: Settings, metrics: Metrics, *, clock: Callable[[], float] = time.time,
    setup: Callable[[Relay], None] | None = None,
) -> AsyncIterator[Relay]:
    """Run a relay on ``settings`` until the block is left (see the module's docstring).

    ``setup`` is called with the relay once it is built and before any of its tasks starts:
    the place to add hooks. ``clock`` (seconds since the epoch) is the time retention is
    measured against when the change feed and idempotency records are pruned.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret = settings.secret or load_or_create_secret(settings.data_dir)
    from .store.factory import create_store  # SQLite unless settings.store is a postgresql:// URL

    store = create_store(settings, settings.data_dir / STORE_FILE)
    store.on_commit = metrics.on_commit
    fanout = create_fanout(settings, metrics)  # the single-node default does nothing (no Redis)
    metrics.fanout_available.set_function(lambda: float(fanout.available))
    if fanout.shared:
        log.info("cluster node sharing rooms",
                 extra={"fanout": describe_fanout(settings), "node": fanout.node_id})
    async with store, anyio.create_task_group() as tg:
        relay = Relay(settings, secret, store, metrics, fanout=fanout, clock=clock)
        if setup is not None:
            setup(relay)
        await tg.start(fanout.run)
        await tg.start(relay.rooms.run_evictions)
        await tg.start(_prune_periodically, store, settings, clock)
        await tg.start(relay.lifetimes.run)
        await tg.start(watch_loop_lag, metrics.event_loop_lag)
        try:
            yield relay
        finally:
            relay.shut_down_peers()
            await relay.rooms.close()
            tg.cancel_scope.cancel()


async def _prune_periodically(
    store: Store, settings: Settings, clock: Callable[[], float],
    *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Drop change-feed events and idempotency records past their retention, at start and hourly."""
    task_status.started()
    while True:
        now = clock()
        try:
            changes = await store.prune_changes(now - settings.feed_retention_seconds)
            responses = await store.prune_receipts(now - settings.idempotency_ttl_seconds)
            if changes or responses:
                log.info("pruned the change feed and idempotency records",
                         extra={"changes": changes, "responses": responses})
        except StoreUnavailable as exc:
            log.warning("pruning failed; retrying later", extra={"error": str(exc)})
        await anyio.sleep(PRUNE_PERIOD_SECONDS)
