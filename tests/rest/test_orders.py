"""Orders over REST against the relay app: read, list with filters and cursors, move, pay, cancel.

Orders here are placed by a till over WebSocket (any Yjs peer may write an order
document); checkout over REST has tests of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from pycrdt import Doc

from harness.ypeer import ypeer
from syncline.adapters.rest import orders as orders_module
from syncline.engine import Order, OrderLine

from .helpers import assert_problem
from .inprocess import InProcessRelay

pytestmark = pytest.mark.anyio

ORDERS = "/v1/tenants/acme/orders"
TEE = OrderLine("k-tee", "tee", {"size": "M"}, 2, 1299, 2598)


@asynccontextmanager
async def rest(relay: InProcessRelay, token: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {token or relay.token('acme')}"}
    async with httpx.AsyncClient(base_url=relay.http_url, headers=headers, timeout=10.0) as client:
        yield client


async def place(relay: InProcessRelay, order_id: str, *lines: OrderLine, moves: tuple[str, ...] = ()) -> None:
    """A till places ``order_id`` over WebSocket (and makes ``moves``), acknowledged by the relay."""
    async with ypeer(relay.url_for(f"acme/order/{order_id}"), acks=True) as peer:
        await peer.edit(lambda doc: Order(doc, order_id, clock=lambda: 1_000).place(
            cart=f"c-{order_id}", location="north", currency="EUR", lines=list(lines or [TEE]), by="till-1"))
        for move in moves:
            kind, _, to = move.partition(":")
            if kind == "payment":
                await peer.edit(lambda doc, to=to: Order(doc, order_id).record_payment(to, by="till-1"))
            else:
                await peer.edit(lambda doc, move=move: Order(doc, order_id).advance(move, by="till-1"))
        await peer.wait_acked(1 + len(moves))


async def test_an_order_reads_with_its_lines_total_stage_and_payment(rest_relay: InProcessRelay) -> None:
    await place(rest_relay, "o-1")
    async with rest(rest_relay) as client:
        response = await client.get(f"{ORDERS}/o-1")
        assert response.status_code == 200, response.text
        body = response.json()
        assert {k: body[k] for k in ("id", "cart", "location", "currency", "total", "stage", "payment")} == {
            "id": "o-1", "cart": "c-o-1", "location": "north", "currency": "EUR", "total": 2598,
            "stage": "placed", "payment": "pending"}
        assert body["lines"] == [{"id": "k-tee", "product": "tee", "attributes": {"size": "M"}, "quantity": 2,
                                  "unit_price": 1299, "line_total": 2598}]
        again = await client.get(f"{ORDERS}/o-1", headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304
        assert_problem(await client.get(f"{ORDERS}/never"), 404, "unknown-order")


async def test_moves_pay_and_cancel_keep_a_trail_and_refusals_are_409(rest_relay: InProcessRelay) -> None:
    await place(rest_relay, "o-2")
    async with rest(rest_relay) as client:
        moved = await client.post(f"{ORDERS}/o-2/stage", json={"stage": "ready", "actor": "kitchen", "note": "hot"})
        assert moved.status_code == 200, moved.text
        paid = await client.post(f"{ORDERS}/o-2/payment", json={"status": "paid", "actor": "terminal", "at": 5})
        assert paid.json()["payment"] == "paid"
        refused = await client.post(f"{ORDERS}/o-2/stage", json={"stage": "confirmed", "actor": "kitchen"})
        problem = assert_problem(refused, 409, "transition-refused")
        assert (problem["current"], problem["requested"]) == ("ready", "confirmed")
        cancelled = await client.post(f"{ORDERS}/o-2/cancel", json={"actor": "manager", "note": "left"})
        assert cancelled.json()["stage"] == "cancelled"
        trail = [(m["kind"], m["from"], m["to"], m["by"]) for m in cancelled.json()["trail"]]
        assert trail == [("stage", "placed", "ready", "kitchen"), ("payment", "pending", "paid", "terminal"),
                         ("stage", "ready", "cancelled", "manager")]
        assert_problem(await client.post(f"{ORDERS}/o-2/stage", json={"stage": "completed", "actor": "x"}),
                       409, "transition-refused")
        assert_problem(await client.post(f"{ORDERS}/nope/cancel", json={"actor": "x"}), 404, "unknown-order")
        after = (await client.get(f"{ORDERS}/o-2")).json()
        assert after == cancelled.json()


async def test_a_websocket_peer_sees_a_rest_move(rest_relay: InProcessRelay) -> None:
    await place(rest_relay, "o-3")
    async with rest(rest_relay) as client, ypeer(rest_relay.url_for("acme/order/o-3")) as peer:
        await peer.wait_until(lambda doc: Order(doc, "o-3").view().placed)
        response = await client.post(f"{ORDERS}/o-3/payment", json={"status": "authorized", "actor": "terminal"})
        assert response.status_code == 200, response.text
        await peer.wait_until(lambda doc: Order(doc, "o-3").payment() == "authorized")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("stage", {"stage": "shipped", "actor": "x"}, "stage"),
        ("stage", {"stage": "ready"}, "actor"),
        ("stage", {"stage": "ready", "actor": "x", "extra": 1}, "extra"),
        ("payment", {"status": "PAID", "actor": "x"}, "status"),
        ("payment", {"status": "paid", "actor": "x", "note": "n" * 1025}, "note"),
        ("cancel", {"actor": "x", "at": -1}, "at"),
        ("cancel", {"actor": ["x"]}, "actor"),
    ],
)
async def test_bad_moves_are_422_and_change_nothing(rest_relay: InProcessRelay, path: str, body: dict[str, Any],
                                                    field: str) -> None:
    await place(rest_relay, "o-4")
    async with rest(rest_relay) as client:
        before = (await client.get(f"{ORDERS}/o-4")).json()
        problem = assert_problem(await client.post(f"{ORDERS}/o-4/{path}", json=body), 422, "validation-error")
        assert problem["errors"][0]["field"] == field
        assert (await client.get(f"{ORDERS}/o-4")).json() == before


async def test_a_retried_move_with_its_key_answers_the_first_reply(rest_relay: InProcessRelay) -> None:
    await place(rest_relay, "o-5")
    async with rest(rest_relay) as client:
        key = {"Idempotency-Key": "move-1"}
        first = await client.post(f"{ORDERS}/o-5/stage", json={"stage": "confirmed", "actor": "a"}, headers=key)
        await client.post(f"{ORDERS}/o-5/stage", json={"stage": "preparing", "actor": "a"})
        retried = await client.post(f"{ORDERS}/o-5/stage", json={"stage": "confirmed", "actor": "a"}, headers=key)
        assert retried.json() == first.json() and retried.json()["stage"] == "confirmed"
        assert (await client.get(f"{ORDERS}/o-5")).json()["stage"] == "preparing"


async def test_the_list_pages_by_cursor_filters_and_hides_what_the_token_cannot_read(
    rest_relay: InProcessRelay,
) -> None:
    for i in range(7):
        await place(rest_relay, f"o-{i:02}", moves=("confirmed",) if i % 2 else ())
    await place(rest_relay, "o-99", moves=("payment:paid",))
    async with rest(rest_relay) as client:
        seen, cursor = [], None
        while True:
            page = await client.get(ORDERS, params={"limit": 3, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            seen += [order["id"] for order in page.json()["orders"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert seen == [f"o-{i:02}" for i in range(7)] + ["o-99"]
        confirmed = await client.get(ORDERS, params={"stage": "confirmed", "limit": 100})
        assert [o["id"] for o in confirmed.json()["orders"]] == ["o-01", "o-03", "o-05"]
        paid = await client.get(ORDERS, params={"payment": "paid"})
        assert [(o["id"], o["total"], o["lines"]) for o in paid.json()["orders"]] == [("o-99", 2598, 1)]
        assert_problem(await client.get(ORDERS, params={"stage": "lost"}), 400, "invalid-parameter")
        assert_problem(await client.get(ORDERS, params={"cursor": "!!"}), 400, "invalid-parameter")
        assert_problem(await client.get(ORDERS, params={"limit": "0"}), 400, "invalid-parameter")
        assert_problem(await client.get(ORDERS, params={"sort": "id"}), 400, "invalid-parameter")
    async with rest(rest_relay, rest_relay.token("acme", "acme/order/o-01", "acme/order/o-99")) as narrow:
        listed = await narrow.get(ORDERS, params={"limit": 100})
        assert [o["id"] for o in listed.json()["orders"]] == ["o-01", "o-99"]
    async with rest(rest_relay, rest_relay.token("globex")) as other:
        assert (await other.get("/v1/tenants/globex/orders")).json()["orders"] == []
        assert_problem(await other.get(ORDERS), 403, "forbidden")


async def test_the_list_reads_past_a_stored_update_that_does_not_integrate(rest_relay: InProcessRelay) -> None:
    """A peer stored an update Yrs cannot integrate (the relay stores before it integrates, then
    closes the peer); moves stored after it still show in the list, as they do in the order."""
    await place(rest_relay, "o-bad")
    async with ypeer(rest_relay.url_for("acme/order/o-bad"), acks=True, doc=Doc(client_id=1)) as till:
        await till.wait_until(lambda doc: Order(doc, "o-bad").view().placed)
        await till.edit(lambda doc: Order(doc, "o-bad").advance("confirmed", by="till-9"))
        await till.wait_acked(2)
        # No structs for client 1 at clock 0: decodes, and Yrs panics on it once the document
        # holds items of client 1 (tests/engine/test_sync.py).
        await till.send_update(bytes([1, 0, 1, 0, 0]))
        with anyio.fail_after(5):
            while till.close_code is None:
                await anyio.sleep(0.01)
    async with rest(rest_relay) as client:
        moved = await client.post(f"{ORDERS}/o-bad/stage", json={"stage": "ready", "actor": "kitchen"})
        assert moved.status_code == 200 and moved.json()["stage"] == "ready", moved.text
        assert (await client.get(f"{ORDERS}/o-bad")).json()["stage"] == "ready"
        listed = (await client.get(ORDERS, params={"stage": "ready"})).json()["orders"]
        assert [(o["id"], o["stage"]) for o in listed] == [("o-bad", "ready")]


async def pages(client: httpx.AsyncClient, **params: Any) -> list[list[str]]:
    """Every page of the list with ``params``, as order ids, following ``next_cursor`` to the end."""
    result, cursor = [], None
    while True:
        response = await client.get(ORDERS, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        result.append([order["id"] for order in response.json()["orders"]])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return result


async def test_a_filtered_page_is_filled_from_the_orders_after_it(
    rest_relay: InProcessRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(10):
        await place(rest_relay, f"o-{i}", moves=("confirmed",) if i in (1, 6, 7, 9) else ())
    async with rest(rest_relay) as client:
        # Pages fill up with matches however many orders the filter skips; the cursor goes on
        # right after the last order a page examined.
        assert await pages(client, stage="confirmed", limit=2) == [["o-1", "o-6"], ["o-7", "o-9"], []]
        assert await pages(client, stage="confirmed", limit=3) == [["o-1", "o-6", "o-7"], ["o-9"]]
        assert await pages(client, stage="placed", limit=4) == [["o-0", "o-2", "o-3", "o-4"], ["o-5", "o-8"]]
        assert await pages(client, limit=10) == [[f"o-{i}" for i in range(10)], []]
        assert await pages(client, payment="paid") == [[]]
        # A page stops after examining MAX_EXAMINED documents, full or not, and says where to go on.
        monkeypatch.setattr(orders_module, "MAX_EXAMINED", 3)
        assert await pages(client, stage="confirmed", limit=2) == [["o-1"], [], ["o-6", "o-7"], ["o-9"]]
        assert await pages(client, stage="confirmed", limit=5) == [["o-1"], [], ["o-6", "o-7"], ["o-9"]]
