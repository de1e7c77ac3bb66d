"""One document on this device: a live pycrdt Doc bound to the local store, and what it reports.

Every transaction on the document that did not come from elsewhere is a local edit:
a pycrdt observer writes its update to the store (log + outbox, one SQLite
transaction) inside the edit call, so the edit is on disk before the call returns.
Updates from the relay or from other clients on this device are applied with the
observer muted. The relay connection itself lives in :mod:`.connection`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from pycrdt import Doc, TransactionEvent, merge_updates

from syncline.engine import Cart, Conflict, Order, StockLedger, apply_update

from .errors import ClientClosed, ClientError, LocalStoreError, SyncTimeout
from .local_store import LocalStore
from .same_device import DocumentLease
from .settings import ClientSettings
from .status import Change, Status

log = logging.getLogger("syncline.client")

EMPTY_UPDATE = b"\x00\x00"
SUBSCRIBER_BUFFER = 1024

T = TypeVar("T")


class Signal:
    """A level-triggered wake-up: ``set()`` from sync code, ``await wait()`` consumes it."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = anyio.Event()


class Subscription(Generic[T]):
    """An async iterator of notifications; close it (or use ``with``) to unsubscribe."""

    def __init__(self, owner: list[Subscription[T]]) -> None:
        self._owner = owner
        self._send: ObjectSendStream[tuple[T, int]]
        self._receive: ObjectReceiveStream[tuple[T, int]]
        self._send, self._receive = anyio.create_memory_object_stream[tuple[T, int]](SUBSCRIBER_BUFFER)
        self._missed = 0
        owner.append(self)

    def _offer(self, item: T) -> None:
        try:
            self._send.send_nowait((item, self._missed))
            self._missed = 0
        except anyio.WouldBlock:
            self._missed += 1  # a slow reader loses notifications, never the document's state
        except anyio.ClosedResourceError:
            pass

    def close(self) -> None:
        if self in self._owner:
            self._owner.remove(self)
        self._send.close()
        self._receive.close()

    def __enter__(self) -> Subscription[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        try:
            item, missed = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None
        if self._missed and self._receive.statistics().current_buffer_used == 0:
            missed, self._missed = missed + self._missed, 0  # dropped while the buffer was full
        if missed and isinstance(item, Change):
            return Change(item.doc, item.origin, item.update, missed)  # type: ignore[return-value]
        return item


class Replica:
    """One open document: its Doc, typed model, status, pending count and subscriptions."""

    def __init__(self, name: str, kind: str, doc_id: str, store: LocalStore, settings: ClientSettings,
                 writer: str) -> None:
        self.name = name
        self.kind = kind
        self.doc = Doc()
        self.model: Cart | StockLedger | Order = (
            Cart(self.doc, doc_id) if kind == "cart" else
            StockLedger(self.doc, doc_id) if kind == "stock" else
            Order(self.doc, doc_id)
        )
        self.settings = settings
        self.store = store
        self.writer = writer
        self.lease = DocumentLease(settings.data_dir, name)
        self.leader = False
        self.error: ClientError | None = None
        """Why this replica stopped syncing for good (a refused token, say); None while it tries."""
        self.failed_rounds = 0
        """Times every relay URL failed in a row; a flush that sees this grow stops waiting."""
        self.outbox_signal = Signal()
        self._status = Status.DISCONNECTED
        self._last_acked_at: float | None = None
        self._cursor = 0
        self._muted = False
        self._unsaved: list[bytes] = []
        self._closed = False
        self._changed = anyio.Event()
        self._after_change = Signal()
        self._known_conflicts: set[str] = set()
        self._change_callbacks: list[Callable[[Change], None]] = []
        self._change_subs: list[Subscription[Change]] = []
        self._conflict_callbacks: list[Callable[[Conflict], None]] = []
        self._conflict_subs: list[Subscription[Conflict]] = []
        self._status_callbacks: list[Callable[[Status], None]] = []
        self._load()
        if isinstance(self.model, StockLedger):
            self._known_conflicts = {c.id for c in self.model.conflicts()}
        state = store.sync_state(name)
        if state is not None:
            self._last_acked_at = state.last_acked_at
        self._subscription = self.doc.observe(self._on_transaction)

    # -- what a user interface reads ------------------------------------------------

    @property
    def status(self) -> Status:
        return self._status

    @property
    def pending(self) -> int:
        """Local updates the relay has not acknowledged yet (every client of this data directory)."""
        return self.store.pending(self.name)

    @property
    def last_acked_at(self) -> float | None:
        """Unix time of the relay's last acknowledgement for this document, from any client here."""
        return self._last_acked_at

    @property
    def synced(self) -> bool:
        return self._status is Status.CONNECTED and self.pending == 0

    def on_change(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        """Call ``callback`` for each change from the relay or another local client; returns an unsubscriber."""
        return _register(self._change_callbacks, callback)

    def on_conflict(self, callback: Callable[[Conflict], None]) -> Callable[[], None]:
        """Call ``callback`` for each stock conflict that appears (from any edit, local or not)."""
        return _register(self._conflict_callbacks, callback)

    def on_status(self, callback: Callable[[Status], None]) -> Callable[[], None]:
        return _register(self._status_callbacks, callback)

    def changes(self) -> Subscription[Change]:
        """``async for change in replica.changes()``: remote and same-device changes, as they apply."""
        return Subscription(self._change_subs)

    def conflicts(self) -> Subscription[Conflict]:
        """``async for conflict in replica.conflicts()``: new stock conflicts, as they appear."""
        return Subscription(self._conflict_subs)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until ``predicate()`` holds, re-checking after every change; TimeoutError after ``timeout``."""
        with anyio.fail_after(timeout):
            while not predicate():
                changed = self._changed
                await changed.wait()

    async def wait_synced(self, timeout: float) -> None:
        """Wait until connected with nothing pending; raise the replica's error if it gave up."""
        try:
            await self.wait_until(lambda: self.synced or self.error is not None, timeout)
        except TimeoutError:
            raise SyncTimeout(self.name, timeout, self.pending) from None
        if self.error is not None:
            raise self.error

    async def flush(self, timeout: float) -> bool:
        """Try to deliver the outbox; True when synced, False once every relay URL failed
        once (offline) or ``timeout`` passed. Raises the replica's error if the relay refused it."""
        if not self.settings.urls:
            return False
        rounds = self.failed_rounds

        def done() -> bool:
            if self.synced or self.error is not None or self.failed_rounds > rounds:
                return True
            # A follower cannot count failed rounds; the leader it mirrors says it is offline.
            return not self.leader and self._status in (Status.RECONNECTING, Status.DISCONNECTED)

        with anyio.move_on_after(timeout):
            await self.wait_until(done, math.inf)
        if self.error is not None:
            raise self.error
        return self.synced

    # -- local edits -----------------------------------------------------------------

    def _on_transaction(self, event: TransactionEvent) -> None:
        if self._muted:
            return
        if self._closed:
            raise ClientClosed(f"{self.name}: edited after its client closed; the edit is not stored")
        update = event.update
        if update == EMPTY_UPDATE:
            return
        if self._unsaved:
            # Earlier writes failed: they go to disk merged into this one. (The document cannot
            # be read inside its own observer, so they were kept as they were.)
            update = merge_updates(*self._unsaved, update)
        try:
            self.store.append(self.name, update, origin="local", writer=self.writer)
        except LocalStoreError:
            self._unsaved = [update]
            raise
        self._unsaved = []
        self.outbox_signal.set()
        self._after_change.set()
        self.touch()

    # -- updates from elsewhere ----------------------------------------------------

    def _apply(self, update: bytes) -> None:
        self._muted = True
        try:
            apply_update(self.doc, update)
        finally:
            self._muted = False

    def _load(self) -> None:
        tail = self.store.tail(self.name, 0)
        for update in ([tail.snapshot] if tail.snapshot else []) + [u for _, u in tail.updates]:
            self._apply(update)
        self._cursor = tail.cursor

    def catch_up(self) -> int:
        """Apply what other clients on this device wrote since the last look; return how many rows."""
        tail = self.store.tail(self.name, self._cursor, skip_writer=self.writer)
        updates = ([tail.snapshot] if tail.snapshot else []) + [u for _, u in tail.updates]
        for update in updates:
            self._apply(update)
            self._announce(Change(self.name, "device", update))
        self._cursor = tail.cursor
        return len(updates)

    def receive(self, update: bytes) -> None:
        """An update from the relay: apply it (decoded in full first), then share it with this device."""
        if update == EMPTY_UPDATE:
            return
        self._apply(update)
        self.store.append(self.name, update, origin="relay", writer=self.writer)
        self._announce(Change(self.name, "relay", update))

    def device_changed(self) -> None:
        """Another connection committed to the shared file: new rows, acks, or the leader's status."""
        if self._closed:
            return
        self.catch_up()
        self.mirror_leader()
        if self.leader:
            self.outbox_signal.set()  # followers' edits wait in the outbox for us
        self.touch()

    def mirror_leader(self) -> None:
        """A follower shows the status its document's leader published in the shared file."""
        state = self.store.sync_state(self.name)
        if state is not None:
            self._last_acked_at = state.last_acked_at
            if not self.leader and self.error is None:
                self._set_status(Status(state.status))

    def _announce(self, change: Change) -> None:
        for callback in tuple(self._change_callbacks):
            _call(callback, change)
        for sub in tuple(self._change_subs):
            sub._offer(change)
        self._after_change.set()
        self.touch()

    # -- status, acknowledgements ----------------------------------------------------

    def touch(self) -> None:
        """Wake everything waiting in :meth:`wait_until`."""
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    def set_status(self, status: Status, error: ClientError | None = None) -> None:
        """Called by the leader's connection loop; published for the other clients here."""
        if error is not None:
            self.error = error
        if status is self._status and error is None:
            return
        self._set_status(status)
        if self.leader and not self._closed:
            self.store.set_sync_state(self.name, status.value, error=None if error is None else str(error),
                                      leader=self.writer)

    def _set_status(self, status: Status) -> None:
        if status is self._status:
            return
        self._status = status
        for callback in tuple(self._status_callbacks):
            _call(callback, status)
        self.touch()

    def acknowledged(self, through: int) -> None:
        """The relay acknowledged everything up to outbox seq ``through`` (0: nothing of ours)."""
        now = time.time()
        self.store.acknowledge(self.name, through, at=now)
        self._last_acked_at = now
        self.touch()

    def compact_if_due(self) -> bool:
        """Fold the local log into a snapshot once it is long; True if it did.

        Safe from any client of the data directory: the snapshot holds every row up to
        this replica's cursor (it has just caught up), and only those rows are deleted.
        """
        if self.store.row_count(self.name) < self.settings.compaction_rows:
            return False
        self.catch_up()
        return self.store.compact(self.name, self.doc.get_update(), self._cursor) > 0

    # -- background work -----------------------------------------------------------

    async def maintain(self) -> None:
        """After changes: announce new stock conflicts; now and then, compact the local log."""
        since_compaction = 0
        while True:
            await self._after_change.wait()
            since_compaction += 1
            if since_compaction >= 64:
                since_compaction = 0
                self.compact_if_due()
            if isinstance(self.model, StockLedger):
                self._announce_conflicts(self.model)

    def _announce_conflicts(self, ledger: StockLedger) -> None:
        for conflict in ledger.conflicts():
            if conflict.id not in self._known_conflicts:
                self._known_conflicts.add(conflict.id)
                for callback in tuple(self._conflict_callbacks):
                    _call(callback, conflict)
                for sub in tuple(self._conflict_subs):
                    sub._offer(conflict)

    def close(self) -> None:
        self._closed = True  # the observer stays: a later edit raises ClientClosed instead of vanishing
        for sub in (*self._change_subs, *self._conflict_subs):
            sub.close()
        self.lease.release()
        self.touch()


def _call(callback: Callable[[T], None], item: T) -> None:
    """Run a user callback; its bug is logged with its traceback and never stops the sync."""
    try:
        callback(item)
    except Exception:
        log.exception("a client callback raised", extra={"callback": getattr(callback, "__qualname__", repr(callback))})


def _register(callbacks: list[T], callback: T) -> Callable[[], None]:
    callbacks.append(callback)

    def unsubscribe() -> None:
        if callback in callbacks:
            callbacks.remove(callback)

    return unsubscribe
