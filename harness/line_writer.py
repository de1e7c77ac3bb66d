"""A durable-ack writer for fault tests: one peer adding 1 to its own line of cart ``c1``.

It writes as fast as acknowledgements come back (at most one write every
:data:`MIN_INTERVAL` seconds, under the relay's per-connection message rate), until it is
told to stop, the relay closes its connection, or a write stays unacknowledged for
``patience`` seconds. What it sent, what was acknowledged, each write's latency and how it
ended are kept for the test to check against the store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import anyio
from websockets.exceptions import ConnectionClosed

from syncline.engine import Cart

from harness.ypeer import YPeer

MIN_INTERVAL = 0.008
"""Seconds between one writer's writes at the least (a rate-limited write is not acknowledged)."""


@dataclass
class LineWriter:
    peer: YPeer
    line: str
    sent: int = 0
    latencies: list[float] = field(default_factory=list)
    """Seconds from each write to its acknowledgement."""
    failed: BaseException | None = None
    """Why it stopped before being told to: ``TimeoutError`` (a write left unacknowledged),
    ``ConnectionError`` (closed by the relay, its code in the message) or the socket's error."""
    failed_at: float = 0.0
    ended_at: float | None = None
    """When it stopped, for whatever reason (``time.perf_counter``)."""
    _base: int = 0

    @property
    def acked(self) -> int:
        """This writer's updates the relay acknowledged."""
        return self.peer.acked - self._base

    async def run(self, until: anyio.Event, *, patience: float = 5.0) -> None:
        cart = Cart(self.peer.doc, "c1")
        self._base = self.peer.acked
        try:
            while not until.is_set():
                target = self.peer.acked + 1
                started = time.perf_counter()
                await self.peer.edit(lambda doc: cart.add_item(self.line, 1))
                self.sent += 1
                await self._acknowledged(target, patience)
                self.latencies.append(time.perf_counter() - started)
                await anyio.sleep(max(0.0, MIN_INTERVAL - (time.perf_counter() - started)))
        except (TimeoutError, ConnectionError, ConnectionClosed, OSError) as exc:
            self.failed, self.failed_at = exc, time.perf_counter()
        self.ended_at = time.perf_counter()

    async def _acknowledged(self, target: int, patience: float) -> None:
        """Wait until the ack counter reaches ``target``; raise if the relay closes the
        connection first, or after ``patience`` seconds."""
        with anyio.fail_after(patience):
            while self.peer.acked < target:
                if self.peer.close_code is not None:
                    raise ConnectionError(f"closed by the relay with {self.peer.close_code}")
                self.peer.ack_changed = anyio.Event()
                await self.peer.ack_changed.wait()
