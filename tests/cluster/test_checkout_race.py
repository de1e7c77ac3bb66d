"""One checkout retried concurrently on two relay nodes sells once, and both answers agree.

Two real ``syncline serve`` nodes on one PostgreSQL schema and Redis; the same checkout
is sent to both at the same instant, under one Idempotency-Key or under two (a client
that retried on another node with a new key). The store is the judge: one order, one
sale adjustment per line, the cart checked out into it. And the answers are those one
node would give: one ``201`` that placed the order; the other its replay (same key) or
``200`` with ``"replayed": true`` and the same order, byte for byte (another key).
"""

from __future__ import annotations

import time

import anyio
import httpx
import pytest

from syncline.adapters.rest.checkout import sale_id
from syncline.adapters.rest.context import INTERNAL_KEY_PREFIX
from syncline.adapters.rest.orders import order_body
from syncline.engine import Cart, Order, StockLedger
from syncline.engine.names import DocName
from tests.rest.helpers import PROBLEM_BASE, fire_at_once, is_in_use

from .conftest import Cluster

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

ROUNDS = 6


async def fill(http: httpx.AsyncClient, base: str, cart: str) -> None:
    for product, quantity, attributes in (("tee", 2, {}), ("tee", 1, {"size": "M"})):
        response = await http.post(f"{base}/v1/tenants/acme/carts/{cart}/items",
                                   json={"product": product, "quantity": quantity, "attributes": attributes})
        assert response.status_code == 200, response.text


def assert_sold_once(cluster: Cluster, cart: str, location: str) -> dict[str, object]:
    """The store holds one order from ``cart``, one sale per line at ``location``, the cart
    checked out into it; return the order as the REST adapter shows it."""
    order_name = DocName("acme", "order", cart)
    order = Order(cluster.stored_doc(str(order_name)), cart).view()
    assert order.placed and order.cart == cart and order.location == location
    assert sorted((line.product_id, line.quantity) for line in order.lines) == [("tee", 1), ("tee", 2)]
    assert cluster.stored_changes(str(order_name)) == 1  # placed once, by one node
    ledger = StockLedger(cluster.stored_doc(f"acme/stock/{location}"), location).view()
    assert ledger.issues == ()  # no id written twice with two bodies
    assert sorted((a.id, a.sku, a.delta, a.reason, a.ref) for a in ledger.adjustments) == sorted(
        (sale_id(order_name, line.key), "tee", -line.quantity, "sale", cart) for line in order.lines)
    assert ledger.levels == {"tee": -3}
    assert cluster.stored_changes(f"acme/stock/{location}") == 1
    status = Cart(cluster.stored_doc(f"acme/cart/{cart}"), cart).status()
    assert (status.state, status.order) == ("checked_out", cart)
    return order_body(order_name, order)


@pytest.mark.slow
@pytest.mark.parametrize("keys", ["one key", "two keys"])
async def test_a_checkout_sent_to_two_nodes_at_once_sells_once_and_both_answers_agree(
    cluster: Cluster, keys: str
) -> None:
    cluster.load_catalog()
    nodes = cluster.start(2)
    token = nodes[0].token("acme")
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        for round_ in range(ROUNDS):
            cart, location = f"race-{round_}", f"loc-{round_}"
            await fill(http, nodes[round_ % 2].http_url, cart)
            for node in nodes:  # both nodes hold the cart's room open, as after serving it
                assert (await http.get(f"{node.http_url}/v1/tenants/acme/carts/{cart}")).status_code == 200
            body = {"location": location, "actor": "till-1"}
            path = f"/v1/tenants/acme/carts/{cart}/checkout"
            second_key = f"{cart}-a" if keys == "one key" else f"{cart}-b"
            requests = [(0, f"{cart}-a", body), (1, second_key, body)]
            results = await fire_at_once(nodes, token, path, requests)
            stored = assert_sold_once(cluster, cart, location)

            placed = [r for r in results if r.status_code == 201 and "idempotent-replayed" not in r.headers]
            assert len(placed) == 1, [(r.status_code, r.text) for r in results]
            [first] = placed
            [(other_node, other_key, _)] = [req for req, r in zip(requests, results, strict=True) if r is not first]
            [other] = [r for r in results if r is not first]
            assert first.json()["order"] == stored and first.json()["replayed"] is False
            if keys == "one key":
                with anyio.fail_after(10):  # in use while the first runs; then its replay
                    while is_in_use(other):
                        await anyio.sleep(0.05)
                        other = await http.post(nodes[other_node].http_url + path, json=body,
                                                headers={"Idempotency-Key": other_key})
                assert other.status_code == 201 and other.headers["idempotent-replayed"] == "true"
                assert other.content == first.content
            else:
                assert other.status_code == 200, other.text
                assert other.json()["replayed"] is True and other.json()["order"] == stored
                assert other.headers["etag"] == first.headers["etag"]
                assert other.json()["cart"] == first.json()["cart"]
            assert assert_sold_once(cluster, cart, location) == stored
    assert cluster.sql("SELECT * FROM claims") == []


@pytest.mark.slow
async def test_a_retry_on_a_node_that_fan_out_has_not_reached_reads_the_order_from_the_store(
    cluster: Cluster,
) -> None:
    """Node two holds the rooms open but hears nothing from Redis (its link is a black hole):
    a checkout retried there after node one placed the order still finds it, in the store."""
    cluster.load_catalog()
    async with anyio.create_task_group() as tg:
        gate, one, two = await cluster.gated_pair(tg, "redis")
        token = one.token("acme")
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            await fill(http, one.http_url, "late")
            for path in ("carts/late", "orders/late", "stock/north/levels"):  # open on node two
                assert (await http.get(f"{two.http_url}/v1/tenants/acme/{path}")).status_code in (200, 404)
            gate.pause()  # connections stay open, nothing moves
            body = {"location": "north", "actor": "till-1"}
            first = await http.post(f"{one.http_url}/v1/tenants/acme/carts/late/checkout", json=body)
            assert first.status_code == 201, first.text
            retry = await http.post(f"{two.http_url}/v1/tenants/acme/carts/late/checkout", json=body)
            assert retry.status_code == 200, retry.text
            assert retry.json()["replayed"] is True and retry.json()["order"] == first.json()["order"]
            assert retry.headers["etag"] == first.headers["etag"]
            gate.resume()
        gate.close()
    assert assert_sold_once(cluster, "late", "north") == first.json()["order"]


@pytest.mark.slow
async def test_a_checkout_waits_for_a_claim_left_by_a_dead_node_then_takes_it_over(cluster: Cluster) -> None:
    """A node killed mid-checkout leaves the order's claim: checkouts of that order wait a while,
    then answer ``409 checkout-in-progress`` (nothing written); once the claim has expired
    (``--idempotency-claim-seconds``) the next one runs, once."""
    cluster.load_catalog()
    [node] = cluster.start(1, "--idempotency-claim-seconds", "7")
    token = node.token("acme")
    async with httpx.AsyncClient(base_url=node.http_url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=30) as http:
        await fill(http, node.http_url, "orphan")
        cluster.sql("INSERT INTO claims (tenant, key, fingerprint, holder, created_at)"
                    " VALUES ('acme', $1, 'checkout/orphan', 'dead-node', extract(epoch FROM clock_timestamp()))",
                    INTERNAL_KEY_PREFIX + "checkout/orphan")
        started = time.monotonic()
        body = {"location": "north", "actor": "till-1"}
        refused = await http.post("/v1/tenants/acme/carts/orphan/checkout", json=body)
        assert 4 < time.monotonic() - started < 7
        assert refused.status_code == 409 and refused.headers["retry-after"] == "1"
        problem = refused.json()
        assert (problem["type"], problem["order"]) == (PROBLEM_BASE + "checkout-in-progress", "orphan")
        assert cluster.stored_changes("acme/order/orphan") == 0
        assert cluster.stored_changes("acme/stock/north") == 0
        response = await http.post("/v1/tenants/acme/carts/orphan/checkout", json=body)
        assert response.status_code == 201, response.text
    assert_sold_once(cluster, "orphan", "north")
    assert cluster.sql("SELECT * FROM claims") == []
