"""Feed events with meaning, end to end: the relay app on a loopback socket, a real SSE client,
writes over REST, offline batches and WebSocket peers.

Every typed event is checked with its values; the same change made three ways gives the same
events; filters select by type, wildcard and order; a client resuming in the middle of a
change gets the rest of it exactly; a change compaction folded away gives a ``{kind}.changed``
with the document's current state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from syncline.engine import Cart
from syncline.engine.conflicts import negative_level_id
from syncline.engine.stock import StockLedger

from harness.ypeer import ypeer

from .inprocess import InProcessRelay
from .test_feed import Event, Feed, add_item, client_for, open_feed
from .test_feed import relay_with as relay_with  # the fixture

pytestmark = pytest.mark.anyio

TENANT = "/v1/tenants/acme"
BASE = ("seq", "doc", "kind", "id", "action", "at")


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = await client.post(f"{TENANT}{path}", json=body)
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


async def take_changes(feed: Feed, count: int) -> list[list[Event]]:
    """The events of the next ``count`` changes, grouped by change (ids EPOCH-SEQ.I ... EPOCH-SEQ)."""
    changes: list[list[Event]] = []
    current: list[Event] = []
    while len(changes) < count:
        event = await feed.raw()
        if event.event == "heartbeat":
            continue
        current.append(event)
        assert event.id is not None
        if "." not in event.id:
            changes.append(current)
            current = []
    return changes


def shape(events: list[Event]) -> list[tuple[str, dict[str, Any]]]:
    """Each event's type and its own fields (without the change's seq, doc, action and time)."""
    return [(e.event, {k: v for k, v in e.json().items() if k not in BASE}) for e in events]


def ids_of(events: list[Event]) -> list[str]:
    return [e.id or "" for e in events]


async def checkout_scenario(client: httpx.AsyncClient, cart: str, location: str) -> None:
    """A cart of two lines checked out at an empty location (both skus oversold), then moved
    through the stage machine, paid and cancelled, then one conflict resolved."""
    await add_item(client, cart, "tee", 2)
    await add_item(client, cart, "mug", 1)
    await post(client, f"/carts/{cart}/checkout", {"location": location, "actor": "till-1"}, 201)
    await post(client, f"/orders/{cart}/stage", {"stage": "preparing", "actor": "kitchen", "at": 1_000})
    await post(client, f"/orders/{cart}/payment", {"status": "paid", "actor": "terminal", "at": 2_000})
    await post(client, f"/orders/{cart}/cancel", {"actor": "manager", "note": "no stock", "at": 3_000})


async def test_every_typed_event_carries_its_values(rest_relay: InProcessRelay) -> None:
    async with client_for(rest_relay, rest_relay.token("acme")) as client, open_feed(client) as feed:
        await checkout_scenario(client, "c1", "north")
        changes = await take_changes(feed, 7)
        added_tee, added_mug, order, sales, cart, stage, payment = changes[:7]

        [tee_event] = added_tee
        assert tee_event.event == "cart.changed"
        data = tee_event.json()
        assert (data["doc"], data["action"]) == ("acme/cart/c1", "cart.add_item")
        [line] = data["lines"]
        assert (line["product"], line["attributes"], line["previous"], line["quantity"]) == ("tee", {}, 0, 2)
        assert shape(added_mug)[0][1]["lines"][0]["quantity"] == 1

        # The checkout writes the order, the ledger and the cart, one change each.
        [created] = order
        assert created.event == "order.created"
        placed = created.json()
        assert (placed["order"], placed["cart"], placed["location"], placed["currency"], placed["total"]) == (
            "c1", "c1", "north", "EUR", 2 * 1299 + 450)
        assert (placed["stage"], placed["payment"], placed["placed_by"]) == ("placed", "pending", "till-1")
        assert sorted((ln["product"], ln["quantity"], ln["unit_price"]) for ln in placed["lines"]) == [
            ("mug", 1, 450), ("tee", 2, 1299)]

        assert [e.event for e in sales] == ["stock.level_changed", "stock.level_changed",
                                            "stock.conflict_opened", "stock.conflict_opened"]
        levels = [e.json() for e in sales[:2]]
        assert [(d["sku"], d["location"], d["previous"], d["level"], d["refs"]) for d in levels] == [
            ("mug", "north", 0, -1, ["c1"]), ("tee", "north", 0, -2, ["c1"])]
        opened = [e.json() for e in sales[2:]]
        assert [(d["sku"], d["conflict_kind"], d["level"]) for d in opened] == [
            ("mug", "negative_level", -1), ("tee", "negative_level", -2)]
        assert opened[1]["conflict"] == negative_level_id("tee", opened[1]["adjustments"])
        seq = sales[-1].json()["seq"]
        epoch = (sales[-1].id or "").split("-")[0]
        assert ids_of(sales) == [f"{epoch}-{seq}.0", f"{epoch}-{seq}.1", f"{epoch}-{seq}.2", f"{epoch}-{seq}"]
        assert all(e.json()["seq"] == seq for e in sales)

        [(name, closed)] = shape(cart)
        checked_out_at = closed["status"].pop("checked_out_at")
        assert (name, closed) == ("cart.changed", {"lines": [], "status": {
            "state": "checked_out", "order": "c1", "previous": "open"}})
        assert abs(checked_out_at - placed["placed_at"]) < 60_000
        assert shape(stage) == [("order.stage_changed", {"order": "c1", "previous": "placed", "stage": "preparing",
                                                         "by": "kitchen", "moved_at": 1_000})]
        assert shape(payment) == [("order.payment_changed", {"order": "c1", "previous": "pending", "payment": "paid",
                                                             "by": "terminal", "moved_at": 2_000})]
        [cancelled] = await take_changes(feed, 1)
        assert shape(cancelled) == [("order.cancelled", {"order": "c1", "previous": "preparing",
                                                         "stage": "cancelled", "by": "manager", "moved_at": 3_000,
                                                         "note": "no stock"})]

        # Resolving a conflict: compensate brings the level back to 0 and records the decision.
        await post(client, f"/stock/north/conflicts/{opened[1]['conflict']}/resolve",
                   {"strategy": "compensate", "actor": "boss", "id": "r-1"})
        [resolution] = await take_changes(feed, 1)
        assert [e.event for e in resolution] == ["stock.level_changed", "stock.conflict_resolved"]
        level, resolved = (e.json() for e in resolution)
        assert (level["sku"], level["previous"], level["level"]) == ("tee", -2, 0)
        assert (resolved["conflict"], resolved["cleared"], resolved["resolution"]["strategy"],
                resolved["resolution"]["actor"], resolved["resolution"]["id"]) == (
            opened[1]["conflict"], False, "compensate", "boss", "r-1")

        # A restock clears the other conflict without a decision.
        await post(client, "/stock/north/adjustments",
                   {"id": "in-1", "sku": "mug", "delta": 3, "reason": "restock", "actor": "clerk"}, 201)
        [restock] = await take_changes(feed, 1)
        assert [e.event for e in restock] == ["stock.level_changed", "stock.conflict_resolved"]
        assert (restock[1].json()["conflict"], restock[1].json()["cleared"], restock[1].json()["resolution"]) == (
            opened[0]["conflict"], True, None)


async def test_the_same_change_over_rest_a_batch_and_a_websocket_gives_the_same_events(
    rest_relay: InProcessRelay,
) -> None:
    steps = [("in", 5, "restock", None), ("s1", -4, "sale", "o-1"), ("s2", -3, "sale", "o-2")]
    async with client_for(rest_relay, rest_relay.token("acme")) as client, open_feed(client) as feed:
        for adjustment_id, delta, reason, ref in steps:
            body: dict[str, Any] = {"id": adjustment_id, "sku": "tee", "delta": delta, "reason": reason,
                                    "actor": "till", "at": 1_000}
            if ref is not None:
                body["ref"] = ref
            await post(client, "/stock/by-rest/adjustments", body, 201)
            await post(client, "/stock/by-batch/batch", {"operations": [{"type": "adjust", **body}]})
        await add_item(client, "cart-rest", "tee", 2)
        async with (ypeer(rest_relay.url_for("acme/stock/by-ws")) as stock_peer,
                    ypeer(rest_relay.url_for("acme/cart/cart-ws")) as cart_peer):
            for adjustment_id, delta, reason, ref in steps:
                await stock_peer.edit(lambda doc, a=adjustment_id, d=delta, r=reason, f=ref: StockLedger(
                    doc, "by-ws").record(a, "tee", d, reason=r, actor="till", at=1_000, ref=f))
            await cart_peer.edit(lambda doc: Cart(doc, "cart-ws").add_item("tee", 2))
            changes = await take_changes(feed, 11)
    by_doc: dict[str, list[list[Event]]] = {}
    for change in changes:
        by_doc.setdefault(change[0].json()["doc"], []).append(change)

    def without_location(change: list[Event]) -> list[tuple[str, dict[str, Any]]]:
        return [(name, {k: v for k, v in fields.items() if k != "location"}) for name, fields in shape(change)]

    rest, batch, ws = (by_doc[f"acme/stock/{loc}"] for loc in ("by-rest", "by-batch", "by-ws"))
    assert [c[0].json()["action"] for c in rest + batch + ws] == ["stock.adjust"] * 3 + ["stock.batch"] * 3 + [
        "sync"] * 3
    assert [without_location(c) for c in rest] == [without_location(c) for c in batch] == [
        without_location(c) for c in ws]
    assert [e.event for c in rest for e in c] == [
        "stock.level_changed", "stock.level_changed", "stock.level_changed", "stock.conflict_opened"]
    assert [(e.json()["previous"], e.json()["level"], e.json()["refs"]) for c in ws for e in c
            if e.event == "stock.level_changed"] == [
        (0, 5, []), (5, 1, ["o-1"]), (1, -2, ["o-2"])]
    assert shape(by_doc["acme/cart/cart-rest"][0]) == shape(by_doc["acme/cart/cart-ws"][0])


async def test_filters_select_by_type_wildcard_kind_and_order(rest_relay: InProcessRelay) -> None:
    async with client_for(rest_relay, rest_relay.token("acme")) as client:
        async with (open_feed(client, params={"type": "stock.level_changed"}) as levels,
                    open_feed(client, params={"type": "order.*"}) as orders,
                    open_feed(client, params={"type": "stock.changed"}) as all_stock,
                    open_feed(client, params=[("type", "order.created"), ("type", "stock.conflict_opened")]) as two,
                    open_feed(client, params={"order": "c1"}) as one_order,
                    open_feed(client, params={"order": "c2", "type": "cart.changed"}) as other_cart):
            await checkout_scenario(client, "c1", "north")
            await add_item(client, "c2", "cap")  # the marker: after it, nothing else may come
            await post(client, "/carts/c2/checkout", {"location": "south", "actor": "till-1"}, 201)

            async def names(feed: Feed, until: Callable[[Event], bool]) -> list[str]:
                seen = []
                while True:
                    event = await feed.raw()
                    if event.event != "heartbeat":
                        seen.append(event.event)
                        if until(event):
                            return seen

            def doc_is(doc: str, name: str | None = None) -> Callable[[Event], bool]:
                return lambda e: e.json()["doc"] == doc and (name is None or e.event == name)

            assert await names(levels, doc_is("acme/stock/south")) == ["stock.level_changed"] * 3
            assert await names(orders, doc_is("acme/order/c2")) == [
                "order.created", "order.stage_changed", "order.payment_changed", "order.cancelled", "order.created"]
            assert await names(all_stock, doc_is("acme/stock/south", "stock.conflict_opened")) == [
                "stock.level_changed", "stock.level_changed", "stock.conflict_opened", "stock.conflict_opened",
                "stock.level_changed", "stock.conflict_opened"]
            assert await names(two, doc_is("acme/stock/south", "stock.conflict_opened")) == [
                "order.created", "stock.conflict_opened", "stock.conflict_opened", "order.created",
                "stock.conflict_opened"]
            # An order's events: its document, the ledger's moves its sales made, its cart's checkout.
            assert await names(one_order, lambda e: e.event == "order.cancelled") == [
                "order.created", "stock.level_changed", "stock.level_changed", "cart.changed",
                "order.stage_changed", "order.payment_changed", "order.cancelled"]
            assert await names(other_cart, lambda e: True) == ["cart.changed"]
        # Nothing of c2 leaked into the c1 stream: a c1 write after everything comes next.
        async with open_feed(client, params={"order": "c1"}, last_event_id=None) as later:
            await post(client, "/orders/c1/payment", {"status": "refunded", "actor": "terminal"})
            event = await later.next()
            assert (event.event, event.json()["payment"]) == ("order.payment_changed", "refunded")


async def test_resuming_in_the_middle_of_a_change_gets_the_rest_of_it_and_nothing_twice(
    rest_relay: InProcessRelay,
) -> None:
    async with client_for(rest_relay, rest_relay.token("acme")) as client:
        async with open_feed(client, params={"doc": "stock/north"}) as feed:
            await checkout_scenario(client, "c1", "north")
            [sales] = await take_changes(feed, 1)
        assert len(sales) == 4
        for cut in range(3):  # after event 0, 1 and 2 of the change
            async with open_feed(client, last_event_id=sales[cut].id, params={"doc": "stock/north"}) as feed:
                assert feed.connected["position"] == sales[cut].id
                await post(client, "/stock/north/adjustments",
                           {"id": f"marker-{cut}", "sku": "cap", "delta": 1, "reason": "restock", "actor": "x"}, 201)
                rest = [await feed.raw() for _ in range(3 - cut)]
                assert [(e.event, e.id, e.data) for e in rest] == [(e.event, e.id, e.data) for e in sales[cut + 1:]]
                marker = await feed.raw()
                assert (marker.event, marker.json()["sku"]) == ("stock.level_changed", "cap")
        # Resuming at the change's last id: the next change comes next.
        async with open_feed(client, last_event_id=sales[-1].id, params={"doc": "stock/north"}) as feed:
            nxt = await feed.raw()
            assert nxt.json()["seq"] > sales[-1].json()["seq"] and nxt.json()["sku"] == "cap"
        # A malformed index is refused like any other bad id.
        epoch = (sales[0].id or "").split("-")[0]
        for bad in (f"{sales[0].id}.1", f"{(sales[0].id or '').split('.')[0]}.x", f"{epoch}-0.0"):
            response = await client.get(f"{TENANT}/events", headers={"Last-Event-ID": bad})
            assert response.status_code == 400, bad


def snapshot_seq(relay: InProcessRelay, doc: str) -> int:
    path = relay.data_dir / "syncline.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute("SELECT seq FROM snapshots WHERE doc = ?", (doc,)).fetchone()
    return 0 if row is None else int(row[0])


async def test_a_change_compaction_folded_away_gives_the_generic_event_with_the_current_state(
    relay_with: Callable[..., InProcessRelay],
) -> None:
    relay = relay_with(compaction_updates=4)
    async with client_for(relay, relay.token("acme")) as client:
        async with open_feed(client) as feed:
            start = feed.connected["position"]
        for _ in range(6):
            await add_item(client, "c1", "tee")
        with anyio.fail_after(10):
            while snapshot_seq(relay, "acme/cart/c1") == 0:
                await anyio.sleep(0.02)
        folded = snapshot_seq(relay, "acme/cart/c1")
        async with open_feed(client, last_event_id=start) as feed:
            changes = [e for [e] in await take_changes(feed, 6)]
    for event in changes:
        data = event.json()
        assert event.event == "cart.changed"
        if data["seq"] <= folded:  # cannot say what it did, only what is there
            assert "lines" not in data
            assert [(ln["product"], ln["quantity"]) for ln in data["current"]["lines"]] == [("tee", 6)]
            assert data["current"]["status"] == {"state": "open"}
        else:
            assert "current" not in data
            [line] = data["lines"]
            assert line["quantity"] == line["previous"] + 1
    assert any("current" in e.json() for e in changes) and any("lines" in e.json() for e in changes)
    assert [e.json()["seq"] for e in changes] == sorted({e.json()["seq"] for e in changes})


async def test_the_connected_event_names_the_resume_position_and_a_reconnect_there_misses_nothing(
    rest_relay: InProcessRelay,
) -> None:
    async with client_for(rest_relay, rest_relay.token("acme")) as client:
        async with open_feed(client) as feed:
            position = feed.connected["position"]
            assert feed.connected["reset"] is False and feed.connected["epoch"] == position.split("-")[0]
        await add_item(client, "c1")  # written while no stream is open
        async with open_feed(client, last_event_id=position) as feed:
            event = await feed.next()
            assert event.event == "cart.changed" and event.json()["doc"] == "acme/cart/c1"


async def test_each_change_is_derived_once_for_all_streams_and_only_while_streams_are_open(
    rest_relay: InProcessRelay,
) -> None:
    assert rest_relay.app is not None
    hub = rest_relay.app.state.feed
    async with client_for(rest_relay, rest_relay.token("acme")) as client:
        for product in ("tee", "mug", "cap"):  # no stream: the writes derive nothing
            await add_item(client, "quiet", product)
        assert hub.made_deriver is None
        async with open_feed(client) as first, open_feed(client) as second, open_feed(client) as third:
            for i in range(5):
                await add_item(client, "busy", "tee")
            for feed in (first, second, third):
                events = await feed.take(5)
                assert [e.json()["lines"][0]["quantity"] for e in events] == [1, 2, 3, 4, 5]
            deriver = hub.made_deriver
            assert deriver is not None
            assert deriver.applied == 5  # the first stream's asks; the others read what it derived
            assert deriver.followed == 1
        with anyio.fail_after(5):  # the streams' tasks end shortly after their connections
            while deriver.followed:
                await anyio.sleep(0.02)
