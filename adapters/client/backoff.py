"""Reconnection delays: exponential backoff with full jitter, capped.

``delay(attempt) = uniform(0, min(cap, base * 2**attempt))`` (the "full jitter" of
AWS's *Exponential Backoff and Jitter*): clients that lost the same relay at the same
instant spread their reconnects over the whole window instead of stampeding together.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Counts failed attempts and says how long to wait before the next one."""

    def __init__(self, base: float, cap: float, *, uniform: Callable[[float, float], float] = random.uniform) -> None:
        if not (base > 0 and cap >= base):
            raise ValueError(f"need 0 < base <= cap, got base={base!r} cap={cap!r}")
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._uniform = uniform

    def ceiling(self, attempt: int) -> float:
        """The largest delay attempt number ``attempt`` (from 0) may wait."""
        # 2**64 overflows nothing in Python, but min() with the cap keeps floats small.
        return min(self.cap, self.base * 2.0 ** min(attempt, 64))

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        delay = self._uniform(0.0, self.ceiling(self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """A connection succeeded: the next failure starts again from ``base``."""
        self.attempt = 0
