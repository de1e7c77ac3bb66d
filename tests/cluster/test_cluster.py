"""Three relay nodes sharing rooms: PostgreSQL for the store, Redis pub/sub for fan-out (docs/cluster.md).

Every test runs real ``syncline serve --store postgresql://... --fanout redis://...``
processes on loopback, one fresh schema and channel prefix each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit


import anyio
import anyio.abc
import httpx
import pytest
from pycrdt import Doc
from websockets.asyncio.client import connect

from syncline.adapters.client import SyncClient
from syncline.engine import Cart, StockLedger
from syncline.engine import closecodes, protocol
from syncline.engine.protocol import Kind
from harness.prometheus_text import value
from harness.relay_process import RelayProcess
from harness.ypeer import YPeer, ypeer

from tests.rest.test_feed import client_for, open_feed

from .conftest import Cluster
from .gate import Gate

pytestmark = pytest.mark.anyio

FAST = {"connect_timeout": 2.0, "ping_interval": 1.0, "ping_timeout": 1.0, "close_timeout": 0.5,
        "backoff_base": 0.05, "backoff_cap": 0.5, "lease_poll_interval": 0.05}
"""Client settings that keep reconnection and failover within test deadlines."""

CART = "acme/cart/c1"
STOCK = "acme/stock/wh1"


@asynccontextmanager
async def peers(urls: list[str], *, acks: bool = True) -> AsyncIterator[list[YPeer]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(ypeer(url, acks=acks)) for url in urls]


class UpdateCounter:
    """A bare y-websocket reader that applies the update frames it receives and counts those
    that brought nothing new (an update delivered twice, or echoed back)."""

    def __init__(self) -> None:
        self.doc: Doc = Doc()
        self.cart = Cart(self.doc, "c1")
        self.redundant = 0

    async def run(self, url: str, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with connect(url) as ws:
            await ws.send(protocol.sync_step1(b"\x00"))
            task_status.started()
            async for frame in ws:
                assert isinstance(frame, bytes)
                message = protocol.decode(frame)
                if message.kind in (Kind.UPDATE, Kind.STEP2):
                    before = self.doc.get_state()
                    self.doc.apply_update(message.payload)
                    if message.kind is Kind.UPDATE and self.doc.get_state() == before:
                        self.redundant += 1  # cart edits only insert: a new one always advances the state


async def test_clients_spread_over_three_nodes_converge_and_each_update_is_stored_once(cluster: Cluster) -> None:
    nodes = cluster.start(3, "--compaction-updates", "15")  # compaction runs on every node, mid-test
    edits = 20
    counters = [UpdateCounter() for _ in nodes]
    async with anyio.create_task_group() as readers, \
            peers([node.url_for(CART) for node in nodes for _ in range(2)]) as cart_peers, \
            peers([node.url_for(STOCK) for node in nodes]) as stock_peers:
        for counter, node in zip(counters, nodes, strict=True):
            await readers.start(counter.run, node.url_for(CART))
        carts = [Cart(peer.doc, "c1") for peer in cart_peers]
        ledgers = [StockLedger(peer.doc, "wh1") for peer in stock_peers]

        async def add(index: int) -> None:
            for n in range(edits):
                await cart_peers[index].edit(lambda doc: carts[index].add_item("tee", 1, {"size": "M"}))
                if n % 5 == 0:
                    await anyio.sleep(0)

        async def sell(index: int) -> None:
            for n in range(edits):
                await stock_peers[index].edit(
                    lambda doc: ledgers[index].record(f"sale-{index}-{n}", "tee", -1, reason="sale", actor=f"till{index}")
                )

        async with anyio.create_task_group() as tg:
            for index in range(len(cart_peers)):
                tg.start_soon(add, index)
            for index in range(len(stock_peers)):
                tg.start_soon(sell, index)
        for peer in [*cart_peers, *stock_peers]:
            await peer.wait_acked(edits + 1, timeout=20)
        key = carts[0].lines()[0].key
        total = edits * len(cart_peers)
        for peer, cart in zip(cart_peers, carts, strict=True):
            await peer.wait_until(lambda doc, cart=cart: cart.quantity(key) == total, timeout=15)
        for peer, ledger in zip(stock_peers, ledgers, strict=True):
            await peer.wait_until(lambda doc, ledger=ledger: ledger.level("tee") == -edits * len(stock_peers), timeout=15)
        assert all(ledger.conflicts() for ledger in ledgers), "every replica derives the oversell conflict"
        # A reader on each node got every cart update and none twice. (Frames may carry several
        # updates: a node catching up from the store forwards what it lacked in one frame.)
        await _wait_for(lambda: all(c.cart.quantity(key) == total for c in counters), 10, "readers")
        assert [counter.redundant for counter in counters] == [0] * len(nodes)
        readers.cancel_scope.cancel()

    # Stored once each, by the node that received it; and compaction on three nodes lost nothing.
    assert cluster.stored_changes(CART) == total
    assert cluster.stored_changes(STOCK) == edits * len(stock_peers)
    assert Cart(cluster.stored_doc(CART), "c1").quantity(key) == total
    assert StockLedger(cluster.stored_doc(STOCK), "wh1").level("tee") == -edits * len(stock_peers)
    assert cluster.sql("SELECT count(*) AS n FROM snapshots")[0]["n"] >= 1, "the rooms were compacted"


async def _wait_for(predicate: object, timeout: float, what: str) -> None:
    with anyio.fail_after(timeout):
        while not predicate():  # type: ignore[operator]
            await anyio.sleep(0.02)


async def test_awareness_crosses_nodes_reaches_late_joiners_and_leaves_with_its_client(cluster: Cluster) -> None:
    one, two, three = cluster.start(3)
    state = '{"user":{"name":"ann","color":"#f00"}}'
    async with ypeer(two.url_for(CART)) as watcher:
        async with ypeer(one.url_for(CART)) as ann:
            await ann.ws.send(protocol.awareness(protocol.encode_awareness([protocol.AwarenessEntry(77, 1, state)])))
            await _wait_for(lambda: watcher.awareness_states().get(77) == state, 5, "node 2 sees ann")
            # Node 3 opens the room only now: it asks the other nodes for their clients' states.
            async with ypeer(three.url_for(CART)) as late:
                await _wait_for(lambda: late.awareness_states().get(77) == state, 5, "a late joiner on node 3 sees ann")
        # Ann's connection closed on node 1: node 1 tells the others her state is gone.
        await _wait_for(lambda: watcher.awareness_states().get(77) == "null", 5, "ann leaves node 1")


async def test_a_rest_write_on_node_one_reaches_a_websocket_peer_and_change_feeds_on_other_nodes(
    cluster: Cluster,
) -> None:
    one, two, three = cluster.start(3)
    token = one.token("acme")
    async with ypeer(three.url_for(STOCK)) as peer, client_for(two, token) as api_two, \
            open_feed(api_two) as feed_two, client_for(three, token) as api_three, open_feed(api_three) as feed_three:
        ledger = StockLedger(peer.doc, "wh1")
        async with client_for(one, token) as api:
            response = await api.post("/v1/tenants/acme/stock/wh1/adjustments", json={
                "id": "restock-1", "sku": "mug", "delta": 12, "reason": "restock", "actor": "rest"})
            assert response.status_code == 201, response.text
        await peer.wait_until(lambda doc: ledger.level("mug") == 12, timeout=5)
        # Node 3 has the room open, node 2 does not: both change feeds wake at once.
        for feed in (feed_two, feed_three):
            event = await feed.next(timeout=5)
            assert event.event == "stock.level_changed" and event.json()["doc"] == STOCK
    assert cluster.stored_changes(STOCK) == 1


@pytest.mark.slow
async def test_a_node_killed_with_sigkill_loses_nothing_acknowledged_and_its_clients_move_on(
    cluster: Cluster, tmp_path: Path,
) -> None:
    one, two, three = cluster.start(3)
    base = [f"ws://127.0.0.1:{node.port}" for node in (one, two, three)]
    # Two clients start on node 2 (the one to be killed), one on node 1; each lists the others after it.
    lists = [[base[1], base[0], base[2]], [base[1], base[2], base[0]], [base[0], base[1], base[2]]]
    edits = 40
    state = '{"user":{"name":"bob"}}'
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(SyncClient(
            data_dir=tmp_path / f"client{i}", urls=urls, token=one.token("acme"), **FAST)) for i, urls in enumerate(lists)]
        carts = [await client.cart(CART) for client in clients]
        watcher = await stack.enter_async_context(ypeer(three.url_for(CART)))
        watched = Cart(watcher.doc, "c1")
        bob = await stack.enter_async_context(ypeer(two.url_for(CART)))
        await bob.ws.send(protocol.awareness(protocol.encode_awareness([protocol.AwarenessEntry(88, 1, state)])))
        await _wait_for(lambda: watcher.awareness_states().get(88) == state, 5, "bob on node 2 is seen on node 3")
        for client in clients:
            await client.wait_synced(10)

        for n in range(edits):
            for cart in carts:
                cart.add_item("tee", 1)
            if n == edits // 2:
                for client in clients:
                    await client.wait_synced(10)
                assert all(client.pending == 0 for client in clients), "half the edits are acknowledged"
                two.kill()  # while the clients keep editing
            await anyio.sleep(0.01)
        for client in clients:
            await client.wait_synced(20)  # only possible on another node: node 2 is dead
        total = edits * len(clients)
        key = carts[0].lines()[0].key
        await watcher.wait_until(lambda doc: watched.quantity(key) == total, timeout=10)
        # Node 2 stopped sending heartbeats: its client's awareness state goes with it.
        await _wait_for(lambda: watcher.awareness_states().get(88) == "null", 10, "bob's state expires with node 2")

    # Acknowledged before the kill, or resent from the clients' outboxes to another node after it:
    # all of it is in the store. (Rows are not counted: a client merges its outbox when it resends.)
    assert Cart(cluster.stored_doc(CART), "c1").quantity(key) == total


async def _ready(node: RelayProcess) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient(base_url=node.http_url, timeout=5) as http:
        response = await http.get("/readyz")
        return response.status_code, response.json()


async def _metrics(node: RelayProcess) -> str:
    async with httpx.AsyncClient(base_url=node.http_url, timeout=5) as http:
        return (await http.get("/metrics")).text


async def _wait_ready(node: RelayProcess, status: int, timeout: float) -> dict[str, object]:
    with anyio.fail_after(timeout):
        while True:
            code, body = await _ready(node)
            if code == status:
                return body
            await anyio.sleep(0.05)


async def _wait_fanout(node: RelayProcess, state: str, timeout: float) -> dict[str, object]:
    with anyio.fail_after(timeout):
        while True:
            code, body = await _ready(node)
            assert code == 200, body  # a fan-out outage never makes a node unready
            if body.get("fanout") == state:
                return body
            await anyio.sleep(0.05)


async def test_a_node_cut_off_from_redis_stays_ready_keeps_acknowledging_and_the_others_catch_up(
    cluster: Cluster,
) -> None:
    async with anyio.create_task_group() as tg:
        gate, one, three = await cluster.gated_pair(tg, "redis")
        async with ypeer(one.url_for(CART), acks=True) as writer_one, \
                ypeer(three.url_for(CART), acks=True) as writer_three, ypeer(three.url_for(CART)) as reader, \
                ypeer(one.url_for(CART)) as reader_one:
            cart_one, cart_three = Cart(writer_one.doc, "c1"), Cart(writer_three.doc, "c1")
            seen, seen_one = Cart(reader.doc, "c1"), Cart(reader_one.doc, "c1")
            await writer_one.edit(lambda doc: cart_one.add_item("tee", 1))
            await reader.wait_until(lambda doc: seen.view().total_quantity == 1)

            gate.close()  # Redis is gone for node 3 (and only for it)
            body = await _wait_fanout(three, "degraded", 10)
            assert "fan-out unavailable" in str(body["reason"]), body
            assert value(await _metrics(three), "syncline_fanout_available") == 0

            # A write on node 3 is stored, delivered to node 3's own peers and acknowledged.
            await writer_three.edit(lambda doc: cart_three.add_item("mug", 1))
            await writer_three.wait_acked(2)
            await reader.wait_until(lambda doc: seen.view().total_quantity == 2)
            # Node 1 hears node 3 go silent and catches its rooms up from the store by polling.
            await reader_one.wait_until(lambda doc: seen_one.view().total_quantity == 2, timeout=15)
            # A newcomer and a REST write on node 3 are served too.
            token = three.token("acme")
            async with httpx.AsyncClient(base_url=three.http_url, headers={"Authorization": f"Bearer {token}"}) as api:
                response = await api.post("/v1/tenants/acme/stock/wh1/adjustments", json={
                    "id": "a-1", "sku": "mug", "delta": 1, "reason": "count", "actor": "rest"})
            assert response.status_code in (200, 201), response.text
            async with ypeer(three.url_for(CART), acks=True) as newcomer:
                assert Cart(newcomer.doc, "c1").view().total_quantity == 2
            # Node 1's writes reach node 3's reader by node 3's own polling.
            await writer_one.edit(lambda doc: cart_one.add_item("tee", 2))
            await writer_one.wait_acked(3)
            await reader.wait_until(lambda doc: seen.view().total_quantity == 4, timeout=5)

            await gate.open(tg)  # Redis is back: node 3 resubscribes
            await _wait_fanout(three, "ok", 10)
            async with ypeer(three.url_for(CART), acks=True) as again:
                cart_again = Cart(again.doc, "c1")
                await again.edit(lambda doc: cart_again.add_item("cap", 1))
                await again.wait_acked(2)
            await writer_one.wait_until(lambda doc: cart_one.view().total_quantity == 5, timeout=5)
        gate.close()
    assert cluster.stored_changes(CART) == 4
    assert cluster.stored_changes(STOCK) == 1


async def test_with_redis_gone_for_every_node_writes_are_acknowledged_and_readers_elsewhere_see_them(
    cluster: Cluster,
) -> None:
    port = urlsplit(cluster.redis).port or 6379
    async with anyio.create_task_group() as tg:
        gate = Gate(port)
        await gate.open(tg)
        gated = cluster.redis.replace(f":{port}", f":{gate.port}", 1)
        a, b = cluster.node(redis=gated), cluster.node(redis=gated)
        await anyio.to_thread.run_sync(a.start)
        await anyio.to_thread.run_sync(b.start)
        async with ypeer(a.url_for(CART), acks=True) as writer, ypeer(b.url_for(CART)) as reader:
            cart, seen = Cart(writer.doc, "c1"), Cart(reader.doc, "c1")
            gate.close()  # Redis is unreachable for the whole cluster
            await _wait_fanout(a, "degraded", 10)
            await _wait_fanout(b, "degraded", 10)
            delays = []
            for n in range(1, 6):
                await writer.edit(lambda doc: cart.add_item("tee", 1))
                await writer.wait_acked(n)
                started = anyio.current_time()
                await reader.wait_until(lambda doc: seen.view().total_quantity == n, timeout=5)
                delays.append(anyio.current_time() - started)
            assert max(delays) < 3, delays  # one poll period (1 s) and a load
            print(f"\nredis down: a write acked on node A reached a reader on node B in "
                  f"{min(delays):.2f}..{max(delays):.2f} s")
            await gate.open(tg)
            await _wait_fanout(a, "ok", 10)
            await _wait_fanout(b, "ok", 10)
            await writer.edit(lambda doc: cart.add_item("tee", 1))
            await reader.wait_until(lambda doc: seen.view().total_quantity == 6, timeout=5)
        gate.close()
    assert cluster.stored_changes(CART) == 6


async def test_a_node_cut_off_from_postgresql_refuses_writes_with_4504_still_relays_others_and_recovers(
    cluster: Cluster,
) -> None:
    async with anyio.create_task_group() as tg:
        gate, one, three = await cluster.gated_pair(tg, "postgresql")
        async with ypeer(one.url_for(CART), acks=True) as writer_one, \
                ypeer(three.url_for(CART), acks=True) as writer_three:
            cart_one, cart_three = Cart(writer_one.doc, "c1"), Cart(writer_three.doc, "c1")
            gate.close()  # node 3 loses PostgreSQL (and only node 3)
            body = await _wait_ready(three, 503, 15)
            assert "fan-out" not in str(body["reason"]), body
            # Writes through node 1 still reach node 3's peer: fan-out needs no store on the receiving node.
            await writer_one.edit(lambda doc: cart_one.add_item("tee", 1))
            await writer_three.wait_until(lambda doc: cart_three.view().total_quantity == 1, timeout=5)
            # A write on node 3 cannot be stored: refused with 4504, not acknowledged.
            await writer_three.edit(lambda doc: cart_three.add_item("mug", 1))
            await writer_three.wait_until(lambda doc: writer_three.close_code is not None, timeout=15)
            assert writer_three.close_code == closecodes.STORE_UNAVAILABLE
            assert writer_three.acked == 1

            await gate.open(tg)  # PostgreSQL is back: node 3 serves and stores again
            await _wait_ready(three, 200, 15)
            async with ypeer(three.url_for(CART), acks=True) as again:
                cart_again = Cart(again.doc, "c1")
                assert cart_again.view().total_quantity == 1
                await again.edit(lambda doc: cart_again.add_item("cap", 1))
                await again.wait_acked(2)
            await writer_one.wait_until(lambda doc: cart_one.view().total_quantity == 2, timeout=5)
        gate.close()
    assert cluster.stored_changes(CART) == 2, "the refused write was not stored"


@pytest.mark.slow
async def test_a_node_whose_redis_link_goes_silent_notices_by_its_own_heartbeats_and_recovers(
    cluster: Cluster,
) -> None:
    async with anyio.create_task_group() as tg:
        gate, one, two = await cluster.gated_pair(tg, "redis")
        async with ypeer(one.url_for(CART), acks=True) as writer, ypeer(two.url_for(CART)) as reader:
            cart, seen = Cart(writer.doc, "c1"), Cart(reader.doc, "c1")
            gate.pause()  # connections stay open, nothing moves: no error, no EOF
            body = await _wait_fanout(two, "degraded", 10)
            assert "fan-out unavailable" in str(body["reason"]), body
            await writer.edit(lambda doc: cart.add_item("tee", 1))
            await writer.wait_acked(2)
            gate.resume()
            await _wait_fanout(two, "ok", 15)
            await reader.wait_until(lambda doc: seen.view().total_quantity == 1, timeout=5)
        gate.close()
