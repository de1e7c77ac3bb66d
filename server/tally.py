"""Messages and bytes, counted in plain integers and added to Prometheus ten times a second.

A broadcast to N peers would otherwise take two locked counter increments per peer, and
every received message two more. Counts added reach ``syncline_messages{direction=...}``
and ``syncline_bytes{direction=...}`` together, at most :data:`FLUSH_SECONDS` later: a
scrape sees them that late at worst, and a lightly loaded relay, whose every loop turn
carries a message or two, does not pay the increments per turn.
"""

from __future__ import annotations

import asyncio
from weakref import WeakKeyDictionary

from .metrics import Metrics

FLUSH_SECONDS = 0.1
"""How long counts wait, at most, before they are added to the counters."""


class MessageTally:
    """Messages and payload bytes of one direction, pending their addition to the relay's counters."""

    __slots__ = ("_bytes", "_count", "_messages", "_scheduled", "_size")

    def __init__(self, metrics: Metrics, direction: str) -> None:
        self._messages = metrics.messages.labels(direction)
        self._bytes = metrics.bytes.labels(direction)
        self._count = 0
        self._size = 0
        self._scheduled = False

    def add(self, count: int, size: int) -> None:
        """Count ``count`` messages of ``size`` payload bytes in all (added within :data:`FLUSH_SECONDS`)."""
        self._count += count
        self._size += size
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Add what is pending to the counters now."""
        self._scheduled = False
        if self._count:
            self._messages.inc(self._count)
            self._bytes.inc(self._size)
            self._count = self._size = 0


_tallies: WeakKeyDictionary[Metrics, dict[str, MessageTally]] = WeakKeyDictionary()


def message_tally(metrics: Metrics, direction: str) -> MessageTally:
    """The one tally of ``metrics`` for ``direction`` ("in" or "out"; every connection of a relay shares it)."""
    tallies = _tallies.get(metrics)
    if tallies is None:
        tallies = _tallies[metrics] = {}
    tally = tallies.get(direction)
    if tally is None:
        tally = tallies[direction] = MessageTally(metrics, direction)
    return tally
