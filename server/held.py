"""Writes of one connection that wait for clocks the room lacks (held out-of-order updates).

A writer's updates can reach the relay out of clock order (an outbox replayed in another
order, merged chunks with gaps). Such an update cannot be integrated whole yet, so it is
held here, in arrival order, bounded in count and bytes, until the room has what it
depends on, or until the held updates together fill each other's gaps (:meth:`merged`).
"""

from __future__ import annotations

from collections import deque

from syncline.engine import InvalidUpdate
from syncline.engine.sync import merge


class HeldWrites:
    def __init__(self, max_count: int, max_bytes: int) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._writes: deque[tuple[int, bytes]] = deque()
        self._bytes = 0

    def __bool__(self) -> bool:
        return bool(self._writes)

    def __len__(self) -> int:
        return len(self._writes)

    @property
    def first(self) -> int | None:
        """The number of the earliest write still held (acknowledgements stop before it)."""
        return self._writes[0][0] if self._writes else None

    def fits(self, update: bytes) -> bool:
        return len(self._writes) < self.max_count and self._bytes + len(update) <= self.max_bytes

    def add(self, number: int, update: bytes) -> None:
        self._writes.append((number, update))
        self._bytes += len(update)

    def writes(self) -> list[tuple[int, bytes]]:
        """The held writes, in arrival order (a copy: landing one while iterating is safe)."""
        return list(self._writes)

    def remove(self, number: int) -> None:
        """Forget write ``number``: it landed."""
        for index, (held, update) in enumerate(self._writes):
            if held == number:
                del self._writes[index]
                self._bytes -= len(update)
                return

    def clear(self) -> None:
        self._writes.clear()
        self._bytes = 0

    def merged(self) -> bytes | None:
        """One update holding all the held writes, or None if they are fewer than two or do not merge.

        Two held updates often complete each other (a merged chunk holding clocks 0-2 and
        4-6, then the update for 2-4): neither integrates alone, both together do."""
        if len(self._writes) < 2:
            return None
        try:
            return merge([update for _, update in self._writes])
        except InvalidUpdate:
            return None
