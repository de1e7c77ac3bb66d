"""Cart lifetimes: when each document was last accessed, and the sweep of abandoned guest carts.

An access is an edit stored (by any peer, REST write or WebSocket, on this node or another)
or a peer connected to the document's room; reads over REST do not count, so looking at a
cart does not keep it alive. :meth:`Lifetimes.touch` notes an access in memory at most once
per :attr:`Lifetimes.touch_interval` per document (a minute, or a quarter of
``cart_idle_seconds`` when that is shorter), and :meth:`Lifetimes.run` writes the accesses
noted to the store's access log once a second, in one transaction, together with the
documents whose rooms have peers now.

A cart idle for ``cart_idle_seconds`` shows as abandoned. Guest carts (made by a guest
session) idle for ``cart_retention_seconds`` are deleted by the sweep that runs every
``cart_sweep_seconds`` (:meth:`Lifetimes.sweep`), except those whose room is open on this
node: a cart with a connection is never deleted (one connected on another node is touched
there every interval, so it is never idle). Each sweep logs one line and counts in
``syncline_cart_sweeps_total`` and ``syncline_carts_swept_total``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from .metrics import Metrics
from .rooms import RoomManager
from .settings import Settings
from .store import AccessLog, StoreUnavailable

log = logging.getLogger("syncline.lifetimes")

TOUCH_INTERVAL_SECONDS = 60.0
"""Longest time between two writes of one document's access."""
FLUSH_SECONDS = 1.0
"""How often the accesses noted are written to the store."""
SWEEP_BATCH = 1_000
"""Most guest carts one sweep deletes (the next sweep takes the rest)."""


class Lifetimes:
    """The accesses of one relay's documents and its cart sweep."""

    def __init__(self, store: AccessLog, rooms: RoomManager, settings: Settings, metrics: Metrics,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._rooms = rooms
        self._settings = settings
        self._metrics = metrics
        self.clock = clock
        self.touch_interval = min(TOUCH_INTERVAL_SECONDS, settings.cart_idle_seconds / 4)
        self._noted: dict[str, float] = {}  # doc -> the access last noted, within the interval
        self._pending: dict[str, float] = {}  # noted, not yet written

    def touch(self, doc: str) -> None:
        """Note an access of ``doc`` now, unless one was noted less than the interval ago."""
        now = self.clock()
        noted = self._noted.get(doc)
        if noted is not None and now - noted < self.touch_interval:
            return
        self._noted[doc] = self._pending[doc] = now

    def accessed_now(self, doc: str) -> float:
        """:meth:`touch` ``doc`` and return its access time as it is kept (the one noted
        within the interval, so that a read right after shows the same)."""
        self.touch(doc)
        return self._noted[doc]

    async def last_accessed(self, doc: str) -> float | None:
        """When ``doc`` was last accessed (seconds since the epoch), or None if never since
        access times are kept."""
        kept = (await self._store.accessed([doc])).get(doc)
        times = [t for t in (self._noted.get(doc), None if kept is None else kept.last_accessed_at) if t is not None]
        return max(times) if times else None

    def abandoned(self, last_accessed_at: float | None) -> bool:
        """True when a cart last accessed then is idle past ``cart_idle_seconds`` now."""
        return last_accessed_at is not None and self.clock() - last_accessed_at >= self._settings.cart_idle_seconds

    async def start_guest(self, doc: str) -> None:
        """Record ``doc`` as a guest cart, accessed now (before its token is handed out)."""
        now = self.clock()
        await self._store.touch({doc: now}, guest=True)
        self._noted[doc] = now

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Write the accesses noted every second, and sweep every ``cart_sweep_seconds``."""
        task_status.started()
        next_sweep = anyio.current_time()
        try:
            while True:
                for name, room in list(self._rooms.rooms.items()):
                    if room.peers:
                        self.touch(name)
                await self.flush()
                if anyio.current_time() >= next_sweep:
                    await self.sweep()
                    next_sweep = anyio.current_time() + self._settings.cart_sweep_seconds
                await anyio.sleep(FLUSH_SECONDS)
        finally:
            with anyio.CancelScope(shield=True):
                await self.flush()

    async def flush(self) -> None:
        """Write the accesses noted since the last flush (kept for the next one if the store fails)."""
        now = self.clock()
        for doc in [doc for doc, at in self._noted.items() if now - at >= self.touch_interval]:
            del self._noted[doc]
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            await self._store.touch(pending)
        except StoreUnavailable as exc:
            for doc, at in pending.items():
                self._pending.setdefault(doc, at)
            log.warning("could not record document accesses; retrying", extra={"error": str(exc)})

    async def sweep(self) -> int:
        """Delete the guest carts idle past their retention whose room is not open here; return how many."""
        started = time.perf_counter()
        before = self.clock() - self._settings.cart_retention_seconds
        deleted = live = 0
        try:
            for doc in await self._store.idle_guests(before, SWEEP_BATCH):
                if self._rooms.is_open(doc):
                    live += 1
                    continue
                await self._store.delete_document(doc)
                deleted += 1
        except StoreUnavailable as exc:
            log.warning("the cart sweep stopped; the next one goes on", extra={"error": str(exc), "deleted": deleted})
            return deleted
        finally:
            self._metrics.cart_sweeps.inc()
            self._metrics.carts_swept.inc(deleted)
        log.info("swept abandoned guest carts: %d deleted, %d kept open", deleted, live, extra={
            "deleted": deleted, "live": live, "seconds": round(time.perf_counter() - started, 3)})
        return deleted
