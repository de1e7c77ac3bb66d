"""A connection that ends is freed by reference counting, with its queues and buffers, the
moment its peer leaves: not left in a reference cycle for the cyclic garbage collector."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from pycrdt import Array

from harness.ypeer import ypeer
from syncline.server.connection import Connection
from tests.rest.inprocess import InProcessRelay

pytestmark = pytest.mark.anyio


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[InProcessRelay]:
    relay = InProcessRelay(tmp_path / "relay").start()
    try:
        yield relay
    finally:
        relay.stop()


def connections_alive() -> list[Connection]:
    """Every Connection the interpreter still tracks, cyclic garbage included."""
    return [o for o in gc.get_objects() if isinstance(o, Connection)]


@pytest.mark.usefixtures("no_automatic_collections")
async def test_connections_that_wrote_synced_and_left_are_freed_without_the_cyclic_collector(
    relay: InProcessRelay,
) -> None:
    name = "acme/cart/released"
    expiring = relay.url(name, relay.token("acme", name, ttl=3600))  # its expiry is armed, then disarmed
    async with ypeer(expiring, acks=True) as writer, ypeer(relay.url_for(name)) as reader:
        assert len(connections_alive()) == 2
        await writer.edit(lambda doc: doc.get("ops", type=Array).append({"n": 1}))
        await writer.wait_acked(2)
        await reader.wait_until(lambda doc: len(doc.get("ops", type=Array)) == 1)
    assert relay.app is not None
    with anyio.fail_after(5):
        while relay.app.state.relay.connections:
            await anyio.sleep(0.02)

    assert connections_alive() == []
