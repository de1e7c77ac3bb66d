"""The door for in-process writers: read a room, or edit it as a peer would (Hocuspocus's DirectConnection).

An in-process writer (the REST adapter) must not touch a room's document before the
store has the update: peers never see what is not on disk. So each room written
through the door gets a *replica*, a second document that mirrors the room's. An edit
runs on the replica, its update is the replica's transactions merged, and it goes
through :meth:`Room.write` like any WebSocket peer's update: read strictly, stored
(with its tag and receipt, in one transaction), integrated, broadcast. Edits of one
room are serialised by a lock; reads take none. A room under edit is held: it is not
evicted between the edit's start and its commit.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from pycrdt import Doc, merge_updates

from syncline.engine import apply_update, encode_diff

from .room import Room
from .rooms import RoomManager
from .store import Receipt


@dataclass(eq=False)
class _Replica:
    """A room's replica and the lock its edits take (dropped with the room when it is evicted)."""

    lock: anyio.Lock = field(default_factory=anyio.Lock)
    doc: Doc | None = None
    models: dict[str, object] = field(default_factory=dict)
    """What the writer built on ``doc`` (engine models), dropped with it."""


class Door:
    def __init__(self, rooms: RoomManager) -> None:
        self._rooms = rooms
        self._replicas: weakref.WeakKeyDictionary[Room, _Replica] = weakref.WeakKeyDictionary()

    async def open(self, name: str) -> Room:
        """The open room of ``name`` (loaded if need be), to read its ``doc`` or to edit.

        Raises :class:`RoomLimitReached`, :class:`RoomLoadFailed` or :class:`StoreUnavailable`."""
        room = await self._rooms.acquire(name)
        room.touch()
        return room

    async def catch_up(self, room: Room) -> None:
        """Bring ``room`` up to what the store holds (see :meth:`Room.catch_up`)."""
        await room.catch_up()

    def current(self, room: Room) -> bool:
        """True while ``room`` is the open room of its name (not evicted, not replaced)."""
        return self._rooms.rooms.get(room.name) is room

    @asynccontextmanager
    async def edit(self, *rooms: Room) -> AsyncIterator[Sequence[DirectEdit]]:
        """Lock ``rooms`` (in name order: no deadlock between two writers) and yield one
        :class:`DirectEdit` per room, in the order given. Leaving with an exception discards
        every replica holding uncommitted changes, so an edit that was not stored leaves
        no trace."""
        ordered = sorted(set(rooms), key=lambda room: room.name)
        # Held from here to the commit: an evicted room would still store the edit, but a
        # room loaded anew meanwhile would never show it to its readers and peers.
        for room in ordered:
            room.holds += 1
        try:
            async with _locked([self._replica(room).lock for room in ordered]):
                edits = [DirectEdit(room, self._replica(room)) for room in rooms]
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

    def _replica(self, room: Room) -> _Replica:
        replica = self._replicas.get(room)
        if replica is None:
            replica = self._replicas[room] = _Replica()
        return replica


@asynccontextmanager
async def _locked(locks: list[anyio.Lock]) -> AsyncIterator[None]:
    if not locks:
        yield
        return
    async with locks[0], _locked(locks[1:]):
        yield


class DirectEdit:
    """One room under edit: change :attr:`replica` (through engine models), then :meth:`commit`.

    The replica's transactions are recorded while the edit is open (their updates merged
    at commit), so an edit that only deletes is seen as well as one that adds. The
    replica outlives the edit (the next edit of the room starts from it, brought up to
    date); :attr:`models` is a cache for whatever the writer builds on it, dropped with it.
    """

    def __init__(self, room: Room, replica: _Replica) -> None:
        self.room = room
        self._replica = replica
        if replica.doc is None:
            replica.doc = Doc()
            replica.models = {}
        self.replica = replica.doc
        apply_update(self.replica, encode_diff(room.doc, self.replica.get_state()))
        self._updates: list[bytes] = []
        self._subscription: Any = self.replica.observe(lambda event: self._updates.append(event.update))

    @property
    def models(self) -> dict[str, object]:
        """Objects built on :attr:`replica` by the writer, kept while the replica lives."""
        return self._replica.models

    @property
    def changed(self) -> bool:
        return bool(self._updates)

    async def commit(self, *, action: str | None = None, receipt: Receipt | None = None) -> int | None:
        """Store what the edit did since it opened or last committed (nothing if it did
        nothing); return its seq, or None. ``action`` and ``receipt`` go to the store with it.

        Any refusal (:class:`StoreUnavailable`, :class:`FanoutUnavailable`,
        :class:`WriteRefused`, :class:`UpdateNotIntegrated`) discards the replica first: the
        next edit starts from a new one, built from the room, with a new client ID."""
        if not self._updates:
            return None
        update = self._updates[0] if len(self._updates) == 1 else merge_updates(*self._updates)
        self._updates = []
        try:
            return await self.room.write(None, update, action=action, receipt=receipt)
        except BaseException:
            self.discard()
            raise

    def close(self) -> None:
        if self._subscription is not None:
            self.replica.unobserve(self._subscription)
            self._subscription = None

    def discard(self) -> None:
        """Drop the replica (and what was built on it): it holds what the store does not."""
        self.close()
        if self._replica.doc is self.replica:
            self._replica.doc = None
            self._replica.models = {}
