"""How fast the relay reads from one connection: a token bucket on received bytes that waits.

A connection may send ``burst`` bytes at once and ``rate`` bytes per second after that.
Over the rate the relay does not close the peer: its receive loop waits before it handles
the frame and reads the next one, so the socket's buffers fill and TCP slows the sender
down (back-pressure). Other peers and rooms keep being served meanwhile.

A single frame larger than ``burst`` is not refused: it waits until a full burst has
refilled, then passes and leaves the bucket in debt by the excess, which later frames
wait off. Over any span the peer is read at ``rate`` plus at most one burst.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio


class ByteThrottle:
    """``rate`` bytes per second sustained, ``burst`` bytes at once, for the frames of one connection."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
        waited: Callable[[float], object] | None = None,
    ) -> None:
        """``waited`` is told the seconds of each wait (a metric)."""
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be greater than 0 and burst at least 1")
        self._waited = waited
        self._rate = float(rate)
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()

    def delay(self, size: int) -> float:
        """Take ``size`` bytes from the budget; return the seconds to wait before handling them."""
        now = self._clock()
        if now > self._last:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
            self._last = now
        # ``_tokens`` is the budget at ``_last`` (now, or when an earlier frame is let through).
        deficit = max(0.0, min(float(size), self._burst) - self._tokens)
        ready = self._last + deficit / self._rate
        self._tokens += deficit - size
        self._last = ready
        return ready - now

    async def admit(self, size: int) -> float:
        """Wait until ``size`` more bytes may be handled; return the seconds waited."""
        wait = self.delay(size)
        if wait > 0:
            await self.pause(wait)
        return wait

    async def pause(self, seconds: float) -> None:
        """Wait the ``seconds`` that :meth:`delay` asked for (and report them)."""
        if self._waited is not None:
            self._waited(seconds)
        await anyio.sleep(seconds)
