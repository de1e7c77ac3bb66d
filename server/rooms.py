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
        if pending is None:
            if len(self.rooms) + len(self._loading) >= self._settings.max_rooms:
                raise RoomLimitReached(self._settings.max_rooms)
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
            if room.peers or room.busy or room.holds or room.idle_since is None or room.idle_since > idle_before:
                continue
            await room.compact()
            # A peer may have joined, or written, while the compaction awaited the store.
            if not room.peers and not room.busy and not room.holds and self.rooms.get(name) is room:
                del self.rooms[name]
                evicted += 1
        self._metrics.rooms.set(len(self.rooms))
        return evicted

    async def close(self) -> None:
        """Compact every open room (shielded: runs to the end even during shutdown)."""
        with anyio.CancelScope(shield=True):
            for room in list(self.rooms.values()):
                await room.compact()

