"""Message and byte counts reach the relay's counters together, within FLUSH_SECONDS, in one
increment per interval however many messages were counted."""

from __future__ import annotations

import asyncio

import pytest

from syncline.server.metrics import Metrics
from syncline.server.tally import FLUSH_SECONDS, message_tally

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def counted(metrics: Metrics, direction: str) -> tuple[float | None, float | None]:
    sample = metrics.registry.get_sample_value
    return (sample("syncline_messages_total", {"direction": direction}),
            sample("syncline_bytes_total", {"direction": direction}))


async def test_counts_reach_the_counters_within_the_flush_interval() -> None:
    metrics = Metrics()
    out = message_tally(metrics, "out")
    assert out is message_tally(metrics, "out")  # one per relay and direction
    message_tally(metrics, "in")
    for _ in range(3):
        out.add(2, 100)
    await asyncio.sleep(0)
    assert counted(metrics, "out") == (0.0, 0.0)  # not per turn
    await asyncio.sleep(FLUSH_SECONDS * 1.5)
    assert counted(metrics, "out") == (6.0, 300.0)
    assert counted(metrics, "in") == (0.0, 0.0)
    out.add(1, 7)
    await asyncio.sleep(FLUSH_SECONDS * 1.5)
    assert counted(metrics, "out") == (7.0, 307.0)
