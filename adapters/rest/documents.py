"""The REST adapter's way into rooms: reads from the room's document, writes as a peer.

A REST write must not touch the room's document before the store has the update
(peers never see what is not on disk). So each room the adapter writes to gets a
*replica*: a second document that mirrors the room's. An edit runs on the replica
(the engine models, unchanged), its update is computed as a diff, and the diff goes
through :meth:`Room.write` like any WebSocket peer's update: validated, stored (with
its change-feed row and, for an idempotent request, its response, in one
transaction), integrated, broadcast. Edits of one room are serialised by a lock;
reads take no lock.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from pycrdt import Doc, merge_updates

from syncline.engine import Cart, StockLedger, apply_update, encode_diff
from syncline.server.errors import RoomLimitReached, RoomLoadFailed, UpdateNotIntegrated, WriteRefused
from syncline.server.fanout import FanoutUnavailable
from syncline.engine.names import DocName
from syncline.server.room import Room
from syncline.server.rooms import RoomManager
from syncline.server.store import StoredResponse, StoreUnavailable

from .problems import Problem

log = logging.getLogger("syncline.rest")


@dataclass(eq=False)
class _RoomState:
    """What the adapter keeps per open room (dropped with the room when it is evicted)."""

    lock: anyio.Lock = field(default_factory=anyio.Lock)
    cart: Cart | None = None
    ledger: StockLedger | None = None
    replica: Doc | None = None
    replica_cart: Cart | None = None
    replica_ledger: StockLedger | None = None


class Documents:
    def __init__(self, rooms: RoomManager) -> None:
        self._rooms = rooms
        self._states: weakref.WeakKeyDictionary[Room, _RoomState] = weakref.WeakKeyDictionary()

    async def open(self, name: DocName) -> Room:
        try:
            room = await self._rooms.acquire(str(name))
        except RoomLimitReached:
            raise Problem("room-limit", headers={"Retry-After": "5"}) from None
        except (StoreUnavailable, RoomLoadFailed):
            raise Problem("store-unavailable", headers={"Retry-After": "5"}) from None
        room.touch()
        return room

    def current(self, room: Room) -> bool:
        """True while ``room`` is the open room of its name (not evicted, not replaced)."""
        return self._rooms.rooms.get(room.name) is room

    def _state(self, room: Room) -> _RoomState:
        state = self._states.get(room)
        if state is None:
            state = self._states[room] = _RoomState()
        return state

    def cart(self, room: Room, cart_id: str) -> Cart:
        """The cart on the room's own document: for reads only."""
        state = self._state(room)
        if state.cart is None:
            state.cart = Cart(room.doc, cart_id)
        return state.cart

    def ledger(self, room: Room, location_id: str) -> StockLedger:
        """The ledger on the room's own document: for reads only."""
        state = self._state(room)
        if state.ledger is None:
            state.ledger = StockLedger(room.doc, location_id)
        return state.ledger

    @asynccontextmanager
    async def editing(self, *rooms: Room) -> AsyncIterator[Sequence[Edit]]:
        """Lock ``rooms`` (in name order: no deadlock between two merges) and yield one
        :class:`Edit` per room, in the order given. Leaving with an exception discards
        every replica holding uncommitted changes, so an edit that was not stored leaves
        no trace."""
        ordered = sorted(set(rooms), key=lambda room: room.name)
        # Held from here to the commit: an evicted room would still store the edit, but a
        # room loaded anew meanwhile would never show it to its readers and peers.
        for room in ordered:
            room.holds += 1
        try:
            async with _locked([self._state(room).lock for room in ordered]):
                edits = [Edit(room, self._state(room)) for room in rooms]
                try:
                    yield edits
                except BaseException:
                    for edit in edits:
                        if edit.changed:  # the replica holds what the store does not
                            edit.discard()
                    raise
                finally:
                    for edit in edits:
                        edit.close()
        finally:
            for room in ordered:
                room.holds -= 1


@asynccontextmanager
async def _locked(locks: list[anyio.Lock]) -> AsyncIterator[None]:
    if not locks:
        yield
        return
    async with locks[0], _locked(locks[1:]):
        yield


class Edit:
    """One room under edit: models on its replica, then :meth:`commit`.

    The replica's transactions are recorded while the edit is open (their updates
    merged at commit), so an edit that only deletes is seen as well as one that adds.
    """

    def __init__(self, room: Room, state: _RoomState) -> None:
        self.room = room
        self._state = state
        if state.replica is None:
            state.replica = Doc()
            state.replica_cart = state.replica_ledger = None
        self.replica = state.replica
        apply_update(self.replica, encode_diff(room.doc, self.replica.get_state()))
        self._updates: list[bytes] = []
        self._subscription = self.replica.observe(lambda event: self._updates.append(event.update))

    def cart(self, cart_id: str) -> Cart:
        if self._state.replica_cart is None:
            self._state.replica_cart = Cart(self.replica, cart_id)
        return self._state.replica_cart

    def ledger(self, location_id: str) -> StockLedger:
        if self._state.replica_ledger is None:
            self._state.replica_ledger = StockLedger(self.replica, location_id)
        return self._state.replica_ledger

    @property
    def changed(self) -> bool:
        return bool(self._updates)

    async def commit(self, *, action: str, response: StoredResponse | None = None) -> int | None:
        """Store what the edit did since it opened or last committed (nothing if it did
        nothing); return its seq, or None.

        Raises :class:`Problem` ``store-unavailable`` if the store refused it, or
        ``fanout-unavailable`` if this cluster node cannot reach the others."""
        if not self._updates:
            return None
        update = self._updates[0] if len(self._updates) == 1 else merge_updates(*self._updates)
        self._updates = []
        try:
            seq = await self.room.write(None, update, action=action, response=response)
        except StoreUnavailable:
            self.discard()
            raise Problem("store-unavailable", headers={"Retry-After": "5"}) from None
        except FanoutUnavailable:
            self.discard()
            raise Problem("fanout-unavailable", headers={"Retry-After": "5"}) from None
        except (WriteRefused, UpdateNotIntegrated) as exc:
            # The replica's client ID was taken, or Yrs did not take the edit whole: a new replica
            # (a new client ID, built from the room) makes the retry a clean edit.
            log.error("the room refused a REST edit", extra={"doc": self.room.name, "reason": str(exc)})
            self.discard()
            raise Problem("edit-refused", headers={"Retry-After": "1"}) from None
        return seq

    def close(self) -> None:
        if self._subscription is not None:
            self.replica.unobserve(self._subscription)
            self._subscription = None

    def discard(self) -> None:
        self.close()
        if self._state.replica is self.replica:
            self._state.replica = None
            self._state.replica_cart = self._state.replica_ledger = None
