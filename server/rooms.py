"""Open rooms lazily, share concurrent loads, evict idle rooms once flushed, cap how many are open.

In a cluster the manager is also the fan-out's listener: it subscribes to a room's
channel before loading it (so nothing published after the load is missed), holds
messages that arrive during the load, and routes remote updates and awareness to
open rooms.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import anyio
from anyio.abc import TaskStatus

from .awareness import AwarenessLimits
from .errors import RoomLimitReached, RoomLoadFailed
from .fanout import Fanout
from .metrics import Metrics
from .room import ChangeListener, Room
from .settings import Settings
from .store import DocumentLog, StoreUnavailable

log = logging.getLogger("syncline.rooms")


class _Loading:
    def __init__(self) -> None:
        self.done = anyio.Event()
        self.room: Room | None = None
        self.error: BaseException | None = None
        self.remote: list[tuple[int, bytes]] = []
        """Updates published by other nodes while the room loads (cluster only)."""
        self.awareness: list[tuple[str, bytes]] = []
        """Awareness published by other nodes while the room loads (cluster only)."""


def awareness_limits(settings: Settings) -> AwarenessLimits:
    return AwarenessLimits(
        connection_states=settings.awareness_connection_states,
        connection_bytes=settings.awareness_connection_bytes,
        room_states=settings.awareness_room_states,
        room_bytes=settings.awareness_room_bytes,
        frame_bytes=settings.max_message_bytes,
    )


class RoomManager:
    def __init__(
        self, store: DocumentLog, settings: Settings, metrics: Metrics, *, on_change: ChangeListener | None = None,
        fanout: Fanout | None = None, on_broadcast: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self._store = store
        self._on_broadcast = on_broadcast
        self._fanout = fanout if fanout is not None and fanout.shared else None
        if self._fanout is not None:
            self._fanout.bind(self)
        self._on_change = on_change
        self._settings = settings
        self._metrics = metrics
        self.rooms: dict[str, Room] = {}
        self._loading: dict[str, _Loading] = {}

    async def acquire(self, name: str) -> Room:
        """The open room for ``name``, loading it once however many peers ask at once."""
        room = self.rooms.get(name)
        if room is not None:
            return room
        pending = self._loading.get(name)
        if pending is None and self._full():
            # Rooms nobody uses (a flood of reads of empty documents, say) make way before
            # anyone is refused: only rooms with peers or work in progress count against a newcomer.
            await self._evict_for_newcomer()
            room = self.rooms.get(name)
            if room is not None:
                return room
            pending = self._loading.get(name)
            if pending is None and self._full():
                raise RoomLimitReached(self._settings.max_rooms)
        if pending is None:
            pending = self._loading[name] = _Loading()
            try:
                room = Room(
                    name, self._store, self._metrics,
                    compaction_updates=self._settings.compaction_updates, on_change=self._on_change,
                    fanout=self._fanout, awareness_limits=awareness_limits(self._settings),
                )
                subscribed = True
                if self._fanout is not None:
                    subscribed = await self._fanout.subscribe(name)  # before the load: nothing falls in between
                with self._metrics.room_load_seconds.time():
                    await room.load()
                for seq, update in pending.remote:
                    room.apply_remote(seq, update)  # those the load already held are skipped
                for origin, payload in pending.awareness:
                    room.remote_awareness(origin, payload)
                self.rooms[name] = pending.room = room
                self._metrics.rooms.set(len(self.rooms))
            except BaseException as exc:
                pending.error = exc
                if self._fanout is not None:
                    with anyio.CancelScope(shield=True):
                        await self._fanout.unsubscribe(name)
                raise
            finally:
                del self._loading[name]
                pending.done.set()
            if not subscribed and self._fanout is not None and self._fanout.available:
                # A session subscribed us during the load, and its resync may have run before
                # the room was here: catch up now (a later session's resync covers the rest).
                await self.resync([name])
            return room
        await pending.done.wait()
        if pending.room is None:
            raise RoomLoadFailed(name) from pending.error
        return pending.room

    def is_open(self, name: str) -> bool:
        """True while the room of ``name`` is open or loading on this node."""
        return name in self.rooms or name in self._loading

    def _full(self) -> bool:
        return len(self.rooms) + len(self._loading) >= self._settings.max_rooms

    async def _evict_for_newcomer(self) -> None:
        """Evict idle rooms, longest idle first, until one place is free or none is left to evict."""
        while self._full():
            idle = [(room.idle_since, name) for name, room in self.rooms.items() if self._evictable(room)]
            if not idle:
                return
            _, name = min(idle)
            room = self.rooms[name]
            await room.compact()
            if self._evictable(room) and self.rooms.get(name) is room:
                del self.rooms[name]
                self._metrics.rooms.set(len(self.rooms))
                await self._unsubscribe(name)

    @staticmethod
    def _evictable(room: Room) -> bool:
        return not room.peers and not room.busy and not room.holds and room.idle_since is not None

    async def run_evictions(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Every few seconds, compact and drop rooms nobody has used for ``room_idle_seconds``."""
        task_status.started()
        period = min(5.0, max(0.05, self._settings.room_idle_seconds / 4))
        while True:
            await anyio.sleep(period)
            await self.evict_idle(time.monotonic() - self._settings.room_idle_seconds)

    async def evict_idle(self, idle_before: float) -> int:
        evicted = 0
        for name, room in list(self.rooms.items()):
            if not self._evictable(room) or room.idle_since is None or room.idle_since > idle_before:
                continue
            await room.compact()
            # A peer may have joined, or written, while the compaction awaited the store.
            if self._evictable(room) and self.rooms.get(name) is room:
                del self.rooms[name]
                evicted += 1
                await self._unsubscribe(name)
        self._metrics.rooms.set(len(self.rooms))
        return evicted

    async def close(self) -> None:
        """Compact every open room (shielded: runs to the end even during shutdown)."""
        with anyio.CancelScope(shield=True):
            for room in list(self.rooms.values()):
                await room.compact()

    async def _unsubscribe(self, name: str) -> None:
        if self._fanout is not None and name not in self.rooms and name not in self._loading:
            await self._fanout.unsubscribe(name)

    # -- the fan-out's listener (cluster only) ---------------------------------------

    def remote_update(self, room: str, seq: int, update: bytes) -> None:
        open_room = self.rooms.get(room)
        if open_room is not None:
            open_room.apply_remote(seq, update)
        elif (pending := self._loading.get(room)) is not None:
            pending.remote.append((seq, update))

    def remote_change(self, room: str, seq: int) -> None:
        if room not in self.rooms and self._on_change is not None:
            self._on_change(room, seq)  # an open room fires it as it applies the update

    def remote_awareness(self, room: str, origin: str, payload: bytes) -> None:
        open_room = self.rooms.get(room)
        if open_room is not None:
            open_room.remote_awareness(origin, payload)
        elif (pending := self._loading.get(room)) is not None:
            pending.awareness.append((origin, payload))

    def remote_broadcast(self, tenant: str, payload: bytes) -> None:
        if self._on_broadcast is not None:
            self._on_broadcast(tenant, payload)

    def awareness_requested(self, room: str) -> None:
        open_room = self.rooms.get(room)
        if open_room is not None and self._fanout is not None:
            payload = open_room.local_awareness()
            if payload is not None:
                self._fanout.publish_awareness(room, payload)

    def node_gone(self, origin: str) -> None:
        for room in list(self.rooms.values()):
            room.forget_node(origin)

    async def resync(self, rooms: Iterable[str] | None) -> None:
        """Re-read open rooms from the store and apply what they lack (one at a time)."""
        for name in list(self.rooms) if rooms is None else list(rooms):
            room = self.rooms.get(name)
            if room is None:
                continue
            try:
                await room.resync()
                self._metrics.fanout_resyncs.inc()
            except StoreUnavailable as exc:
                # The next (re)subscription or compaction catches up; the store's own outage
                # already makes the node not ready.
                log.warning("could not catch up a room from the store", extra={"doc": name, "error": str(exc)})
