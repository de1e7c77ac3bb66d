"""A tenant broadcast in a cluster reaches the tenant's peers and feed readers on every node."""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio
import pytest

from syncline.engine import protocol

from harness.ypeer import YPeer, ypeer
from tests.rest.test_feed import client_for, open_feed

from .conftest import Cluster

pytestmark = pytest.mark.anyio


def _broadcasts(peer: YPeer) -> list[dict[str, object]]:
    return [body for body in peer.extensions if body["op"] == "broadcast"]


async def test_a_broadcast_sent_to_one_node_reaches_the_tenants_peers_and_feeds_on_every_node(
    cluster: Cluster,
) -> None:
    one, two = cluster.start(2)
    token = one.token("acme")
    async with AsyncExitStack() as stack:
        here = await stack.enter_async_context(ypeer(one.url("acme/cart/c1", token), hello=True))
        there = await stack.enter_async_context(ypeer(two.url("acme/cart/c2", token), hello=True))
        other = await stack.enter_async_context(ypeer(two.url("globex/cart/g", two.token("globex")), hello=True))
        api_two = await stack.enter_async_context(client_for(two, token))
        feed_two = await stack.enter_async_context(open_feed(api_two))
        # The feed on node two is reading once an event of a write reached it.
        response = await api_two.post("/v1/tenants/acme/stock/wh1/adjustments", json={
            "id": "a1", "sku": "mug", "delta": 1, "reason": "restock", "actor": "test"})
        assert response.status_code == 201, response.text
        while (await feed_two.next(timeout=5)).event != "stock.level_changed":
            pass
        async with client_for(one, token) as api_one:
            response = await api_one.post("/v1/tenants/acme/live/broadcast", json={"message": "all nodes"})
        assert response.status_code == 202, response.text
        sent = response.json()
        assert sent["peers"] == 1  # node one's own peers; node two's are reached through Redis
        with anyio.fail_after(5):
            while not (_broadcasts(here) and _broadcasts(there)):
                await anyio.sleep(0.01)
        assert [b["id"] for b in _broadcasts(here)] == [b["id"] for b in _broadcasts(there)] == [sent["id"]]
        event = await feed_two.next(timeout=5)
        while event.event not in ("broadcast", "stock.level_changed"):
            event = await feed_two.next(timeout=5)
        assert event.event == "broadcast" and event.json()["id"] == sent["id"] and event.id is None
        # globex's peer on node two heard nothing: a round trip to be sure nothing is in flight
        other.synced = anyio.Event()
        await other.ws.send(protocol.sync_step1(other.doc.get_state()))
        with anyio.fail_after(5):
            await other.synced.wait()
        assert _broadcasts(other) == []
