"""REST and WebSocket peers on the same documents, through one relay served in this process.

A REST write is an edit in the same room as the WebSocket peers': a peer sees it
(in its own pycrdt document, through the engine's models) without asking, and a
REST read sees what a peer wrote once the relay acknowledged it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from pycrdt import Doc

from syncline.adapters.rest.documents import Documents
from syncline.server.door import Door
from syncline.engine import Cart, StockLedger, line_key
from syncline.server.metrics import Metrics
from syncline.engine.names import DocName
from syncline.server.rooms import RoomManager
from syncline.server.settings import Settings
from syncline.server.store.sqlite import SQLiteStore

from harness.ypeer import YPeer, ypeer

from .conftest import catalogued
from .inprocess import InProcessRelay

pytestmark = pytest.mark.anyio

CART = "/v1/tenants/acme/carts/{cart}"
STOCK = "/v1/tenants/acme/stock/{location}"


@asynccontextmanager
async def rest(relay: InProcessRelay) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {relay.token('acme')}"}
    async with httpx.AsyncClient(base_url=relay.http_url, headers=headers, timeout=10.0) as client:
        yield client


def peer_lines(doc: Doc, cart_id: str) -> list[dict[str, Any]]:
    """A peer's view of a cart, in the REST representation's terms (without prices)."""
    return sorted(
        ({"id": line.key, "product": line.product_id, "attributes": dict(line.attributes),
          "quantity": line.quantity} for line in Cart(doc, cart_id).view().lines),
        key=lambda line: line["id"],
    )


def rest_lines(cart: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(
        ({key: line[key] for key in ("id", "product", "attributes", "quantity")} for line in cart["lines"]),
        key=lambda line: line["id"],
    )


async def post_ok(client: httpx.AsyncClient, path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


async def peer_edit(peer: YPeer, edit: Any) -> None:
    """Edit the peer's document, send the update, wait until the relay acknowledged it (stored)."""
    writes = peer.acked
    await peer.edit(edit)
    await peer.wait_acked(writes + 1)


async def test_a_websocket_peer_sees_rest_writes_in_its_own_document(rest_relay: InProcessRelay) -> None:
    async with rest(rest_relay) as client, ypeer(rest_relay.url_for("acme/cart/c1")) as peer:
        cart = await post_ok(client, CART.format(cart="c1") + "/items",
                             {"product": "tee", "quantity": 2, "attributes": {"size": "M", "fit": {"cut": "slim"}}})
        key = line_key("tee", {"fit": {"cut": "slim"}, "size": "M"})
        assert [line["id"] for line in cart["lines"]] == [key]
        await peer.wait_until(lambda doc: Cart(doc, "c1").quantity(key) == 2)
        assert peer_lines(peer.doc, "c1") == rest_lines(cart)

        response = await client.put(CART.format(cart="c1") + f"/lines/{key}", json={"quantity": 7})
        assert response.status_code == 200, response.text
        await peer.wait_until(lambda doc: Cart(doc, "c1").quantity(key) == 7)

        cart = await post_ok(client, CART.format(cart="c1") + "/items", {"product": "mug"})
        await peer.wait_until(lambda doc: len(Cart(doc, "c1").view().lines) == 2)
        assert peer_lines(peer.doc, "c1") == rest_lines(cart)

        response = await client.delete(CART.format(cart="c1") + f"/lines/{key}")
        assert response.status_code == 200, response.text
        await peer.wait_until(lambda doc: Cart(doc, "c1").quantity(key) == 0)
        assert peer_lines(peer.doc, "c1") == rest_lines(response.json())

        cart = await post_ok(client, CART.format(cart="c1") + "/clear", {})
        await peer.wait_until(lambda doc: Cart(doc, "c1").view().lines == ())
        assert cart["lines"] == []


async def test_a_rest_read_sees_a_websocket_peers_acknowledged_edit(rest_relay: InProcessRelay) -> None:
    async with rest(rest_relay) as client, ypeer(rest_relay.url_for("acme/cart/c2"), acks=True) as peer:
        before = await client.get(CART.format(cart="c2"))
        assert before.status_code == 200 and before.json()["lines"] == []
        await peer_edit(peer, lambda doc: Cart(doc, "c2").add_item("tee", 3, {"size": "L"}))
        # No waiting: the ack means stored and integrated, so the very next read has it.
        after = await client.get(CART.format(cart="c2"))
        assert after.status_code == 200
        cart = after.json()
        assert rest_lines(cart) == peer_lines(peer.doc, "c2")
        assert [(line["quantity"], line["unit_price"], line["line_total"]) for line in cart["lines"]] == [
            (3, 1299, 3897)]
        assert (cart["total"], cart["currency"]) == (3897, "EUR")
        assert after.headers["etag"] != before.headers["etag"]
        # The peer's set and remove are seen the same way.
        key = line_key("tee", {"size": "L"})
        await peer_edit(peer, lambda doc: Cart(doc, "c2").set_quantity(key, 1))
        assert rest_lines((await client.get(CART.format(cart="c2"))).json())[0]["quantity"] == 1
        await peer_edit(peer, lambda doc: Cart(doc, "c2").remove_line(key))
        assert (await client.get(CART.format(cart="c2"))).json()["lines"] == []


async def test_concurrent_rest_and_websocket_edits_of_one_cart_converge(rest_relay: InProcessRelay) -> None:
    rounds = 25
    async with (rest(rest_relay) as client,
                ypeer(rest_relay.url_for("acme/cart/shared"), acks=True) as peer,
                ypeer(rest_relay.url_for("acme/cart/shared")) as watcher):

        async def rest_side() -> None:
            for i in range(rounds):
                await post_ok(client, CART.format(cart="shared") + "/items",
                              {"product": "tee", "quantity": 1, "attributes": {"size": "M", "fit": "slim"}})
                if i % 5 == 0:
                    await post_ok(client, CART.format(cart="shared") + "/items", {"product": "mug"})

        async def peer_side() -> None:
            for i in range(rounds):
                # Same product and attributes in another key order: the same line.
                await peer.edit(lambda doc: Cart(doc, "shared").add_item("tee", 2, {"fit": "slim", "size": "M"}))
                if i % 5 == 0:
                    await peer.edit(lambda doc: Cart(doc, "shared").add_item("cap", 1, {"colour": "red"}))
                await anyio.sleep(0)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(rest_side)
                tg.start_soon(peer_side)
            await peer.wait_acked(1 + rounds + rounds // 5)
        expected = {line_key("tee", {"size": "M", "fit": "slim"}): rounds * 3, line_key("mug", {}): rounds // 5,
                    line_key("cap", {"colour": "red"}): rounds // 5}

        def complete(doc: Doc) -> bool:
            return {line.key: line.quantity for line in Cart(doc, "shared").view().lines} == expected

        await peer.wait_until(complete, timeout=10)
        await watcher.wait_until(complete, timeout=10)
        final = (await client.get(CART.format(cart="shared"))).json()
        assert rest_lines(final) == peer_lines(peer.doc, "shared") == peer_lines(watcher.doc, "shared")
        assert final["total"] == rounds * 3 * 1299 + (rounds // 5) * (450 + 999)
    # A peer joining afterwards loads the same state from the relay.
    async with ypeer(rest_relay.url_for("acme/cart/shared")) as late:
        assert peer_lines(late.doc, "shared") == rest_lines(final)


async def test_concurrent_rest_sets_and_removes_and_websocket_edits_converge(
    rest_relay: InProcessRelay,
) -> None:
    """With sets and removes on both sides the outcome depends on timing (an add wins over a
    remove that had not seen it), but every side must end with the same cart."""
    tee, mug = line_key("tee", {}), line_key("mug", {})
    path = CART.format(cart="mixed")
    sent = 1  # the peer's answer to the handshake is its first write
    async with (rest(rest_relay) as client,
                ypeer(rest_relay.url_for("acme/cart/mixed"), acks=True) as peer):

        async def rest_side() -> None:
            for i in range(20):
                await post_ok(client, path + "/items", {"product": "tee"})
                if i % 3 == 0:
                    response = await client.put(f"{path}/lines/{tee}", json={"quantity": i})
                    assert response.status_code in (200, 404), response.text  # 404: removed meanwhile
                if i % 4 == 1:
                    response = await client.delete(f"{path}/lines/{mug}")
                    assert response.status_code in (200, 404), response.text

        async def peer_edit_counted(edit: Any) -> None:
            nonlocal sent
            await peer.edit(edit)
            sent += 1

        async def peer_side() -> None:
            for i in range(20):
                await peer_edit_counted(lambda doc: Cart(doc, "mixed").add_item("mug", 1))
                if i % 3 == 1 and Cart(peer.doc, "mixed").quantity(tee):
                    await peer_edit_counted(lambda doc: Cart(doc, "mixed").remove_line(tee))
                if i % 5 == 2 and Cart(peer.doc, "mixed").quantity(mug):
                    await peer_edit_counted(lambda doc: Cart(doc, "mixed").set_quantity(mug, 7))
                await anyio.sleep(0)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(rest_side)
                tg.start_soon(peer_side)
        # Every REST write is answered and every peer write acknowledged: nothing is in flight.
        await peer.wait_acked(sent)
        final = (await client.get(path)).json()
        await peer.wait_until(lambda doc: peer_lines(doc, "mixed") == rest_lines(final), timeout=10)
        assert final["total_quantity"] == sum(line["quantity"] for line in final["lines"])
    async with ypeer(rest_relay.url_for("acme/cart/mixed")) as late:
        assert peer_lines(late.doc, "mixed") == rest_lines(final)


async def test_websocket_stock_adjustments_show_in_rest_levels_and_history(
    rest_relay: InProcessRelay,
) -> None:
    async with rest(rest_relay) as client, ypeer(rest_relay.url_for("acme/stock/north"), acks=True) as peer:
        await peer_edit(peer, lambda doc: StockLedger(doc, "north").record("ws-1", "tee", 10, reason="restock",
                                                                           actor="till-1", at=1_700_000_000_000))
        await peer_edit(peer, lambda doc: StockLedger(doc, "north").record("ws-2", "tee", -3, reason="sale",
                                                                           actor="till-1", at=1_700_000_000_001))
        levels = await client.get(STOCK.format(location="north") + "/levels")
        assert levels.status_code == 200
        assert levels.json() == {"location": "north", "levels": {"tee": 7}, "open_conflicts": 0}
        # The same adjustment delivered again (another peer replaying its outbox) counts once:
        # that peer's handshake answer carries it and is acknowledged once stored.
        replay = Doc()
        StockLedger(replay, "north").record("ws-2", "tee", -3, reason="sale", actor="till-1", at=1_700_000_000_001)
        async with ypeer(rest_relay.url_for("acme/stock/north"), acks=True, doc=replay):
            pass
        level = await client.get(STOCK.format(location="north") + "/levels/tee")
        assert level.json() == {"location": "north", "sku": "tee", "level": 7}
        history = (await client.get(STOCK.format(location="north") + "/history")).json()
        assert [(e["id"], e["delta"], e["actor"]) for e in history["entries"]] == [
            ("ws-1", 10, "till-1"), ("ws-2", -3, "till-1")]
        # And the other way: a REST adjustment reaches the peer's ledger.
        await post_ok(client, STOCK.format(location="north") + "/adjustments",
                      {"id": "rest-1", "sku": "tee", "delta": -9, "reason": "sale", "actor": "web"}, 201)
        await peer.wait_until(lambda doc: StockLedger(doc, "north").level("tee") == -2)
        conflicts = (await client.get(STOCK.format(location="north") + "/conflicts")).json()["conflicts"]
        assert [(c["sku"], c["level"]) for c in conflicts] == [("tee", -2)]
        assert [c.id for c in StockLedger(peer.doc, "north").conflicts()] == [c["id"] for c in conflicts]


async def test_a_room_is_not_evicted_while_a_rest_edit_waits_for_it_or_holds_it(tmp_path: Path) -> None:
    """An evicted room still stores a late REST edit, but a room loaded anew meanwhile would
    never show it to its readers and peers: eviction must wait for the edit."""
    async with SQLiteStore(tmp_path / "store.sqlite3") as store:
        rooms = RoomManager(store, Settings(data_dir=tmp_path), Metrics())
        documents = Documents(Door(rooms))
        name = DocName("acme", "cart", "c1")
        room = await documents.open(name)
        entered, release = anyio.Event(), anyio.Event()

        async def edit_and_wait() -> None:
            async with documents.editing(room) as (edit,):
                edit.cart("c1").add_item("tee", 1)
                entered.set()
                await release.wait()
                await edit.commit(action="cart.add_item")

        async def queued_edit() -> None:
            async with documents.editing(room) as (edit,):
                edit.cart("c1").add_item("mug", 1)
                await edit.commit(action="cart.add_item")

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(edit_and_wait)
                await entered.wait()
                tg.start_soon(queued_edit)
                await anyio.sleep(0.05)  # the second edit now waits for the lock
                assert await rooms.evict_idle(time.monotonic() + 60) == 0
                release.set()
        assert rooms.rooms[str(name)] is room
        assert {line.product_id for line in Cart(room.doc, "c1").view().lines} == {"tee", "mug"}
        assert await rooms.evict_idle(time.monotonic() + 60) == 1


@pytest.mark.slow
async def test_bursts_of_rest_adds_are_all_read_back_while_idle_rooms_are_evicted_quickly(
    tmp_path: Path,
) -> None:
    relay = InProcessRelay(catalogued(tmp_path / "relay"), room_idle_seconds=0.05).start()
    try:
        async with rest(relay) as client:
            for burst in range(8):
                path = CART.format(cart=f"b{burst % 2}")
                before = (await client.get(path)).json()["total_quantity"]
                with anyio.fail_after(20):
                    async with anyio.create_task_group() as tg:
                        for _ in range(30):
                            tg.start_soon(post_ok, client, path + "/items", {"product": "tee"})
                assert (await client.get(path)).json()["total_quantity"] == before + 30
                await anyio.sleep(0.06 * (burst % 3))
    finally:
        relay.stop()
