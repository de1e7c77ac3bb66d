"""How late the event loop runs what is due: the stalls every peer of this process waits through.

A task sleeps :data:`PERIOD_SECONDS` again and again and observes, each time it wakes, how
much later than asked it woke. A loop that keeps up wakes it within a millisecond (the
timer's resolution); a loop busy with a burst, or stopped by a long call or a garbage
collection, wakes it late by as long as that took.
"""

from __future__ import annotations

import time

import anyio
from anyio.abc import TaskStatus
from prometheus_client import Histogram

__all__ = ["BUCKETS", "PERIOD_SECONDS", "watch_loop_lag"]

PERIOD_SECONDS = 0.05
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


async def watch_loop_lag(
    lag: Histogram, *, period: float = PERIOD_SECONDS,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Observe into ``lag`` how late each wake-up of a ``period``-second sleep comes, until cancelled."""
    task_status.started()
    while True:
        due = time.perf_counter() + period
        await anyio.sleep(period)
        lag.observe(max(0.0, time.perf_counter() - due))
