"""Open rooms lazily, share concurrent loads, evict idle rooms once flushed, cap how many are open."""

from __future__ import annotations

import time

import anyio
from anyio.abc import TaskStatus

from .errors import RoomLimitReached, RoomLoadFailed
from .metrics import Metrics
from .room import ChangeListener, Room
from .settings import Settings
from .store import Store

class _Loading:
    def __init__(self) -> None:
        self.done = anyio.Event()
        self.room: Room | None = None
        self.error: BaseException | None = None


class RoomManager:
    def __init__(
        self, store: Store, settings: Settings, metrics: Metrics, *, on_change: ChangeListener | None = None
    ) -> None:
        self._store = store
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
                )
                await room.load()
                self.rooms[name] = pending.room = room
                self._metrics.rooms.set(len(self.rooms))
            except BaseException as exc:
                pending.error = exc
                raise
            finally:
                del self._loading[name]
                pending.done.set()
            return room
        await pending.done.wait()
        if pending.room is None:
            raise RoomLoadFailed(name) from pending.error
        return pending.room

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
        self._metrics.rooms.set(len(self.rooms))
        return evicted

    async def close(self) -> None:
        """Compact every open room (shielded: runs to the end even during shutdown)."""
        with anyio.CancelScope(shield=True):
            for room in list(self.rooms.values()):
                await room.compact()

