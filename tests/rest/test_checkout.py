"""Checkout over REST: a cart becomes an order priced by the catalog, its stock is sold once, it closes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from syncline.adapters.rest.checkout import sale_id
from syncline.engine import line_key
from syncline.engine.names import DocName

from .helpers import assert_problem, new_id, store_state
from .inprocess import InProcessRelay

pytestmark = pytest.mark.timeout(60)

TENANT = "/v1/tenants/acme"


def fill(api: httpx.Client, cart: str, *items: tuple[str, int]) -> None:
    for product, quantity in items:
        response = api.post(f"{TENANT}/carts/{cart}/items", json={"product": product, "quantity": quantity})
        assert response.status_code == 200, response.text


def checkout(api: httpx.Client, cart: str, **body: Any) -> httpx.Response:
    return api.post(f"{TENANT}/carts/{cart}/checkout", json={"location": "north", "actor": "till-1", **body})


def test_a_checkout_places_a_priced_order_sells_each_line_and_closes_the_cart(module_api: httpx.Client) -> None:
    cart = new_id("c")
    fill(module_api, cart, ("tee", 2), ("mug", 1))
    location = new_id("loc")
    response = checkout(module_api, cart, location=location)
    assert response.status_code == 201, response.text
    body = response.json()
    order = body["order"]
    assert (order["id"], order["cart"], order["location"], order["stage"], order["payment"]) == (
        cart, cart, location, "placed", "pending")
    assert order["total"] == 2 * 1299 + 450 and order["currency"] == "EUR"
    assert response.headers["Location"] == f"{TENANT}/orders/{cart}"
    assert body["cart"]["status"] == "checked_out" and body["cart"]["order"] == cart
    assert module_api.get(f"{TENANT}/orders/{cart}").json() == order
    levels = module_api.get(f"{TENANT}/stock/{location}/levels").json()["levels"]
    assert levels == {"tee": -2, "mug": -1}
    history = module_api.get(f"{TENANT}/stock/{location}/history").json()["entries"]
    tee = line_key("tee", {})
    assert {(e["id"], e["ref"], e["reason"]) for e in history} >= {
        (sale_id(DocName("acme", "order", cart), tee), cart, "sale")}
    refused = module_api.post(f"{TENANT}/carts/{cart}/items", json={"product": "tee"})
    assert assert_problem(refused, 409, "cart-closed")["order"] == cart


def test_a_retried_or_replayed_checkout_sells_once(module_api: httpx.Client) -> None:
    cart, location = new_id("c"), new_id("loc")
    fill(module_api, cart, ("cap", 3))
    first = checkout(module_api, cart, location=location, order=f"o-{cart}")
    assert first.status_code == 201, first.text
    again = checkout(module_api, cart, location=location, order=f"o-{cart}")
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert again.json()["order"] == first.json()["order"]
    keyed = {"Idempotency-Key": f"k-{cart}"}
    assert module_api.post(f"{TENANT}/carts/{cart}/checkout", headers=keyed,
                           json={"location": location, "actor": "till-1", "order": f"o-{cart}"}).status_code == 200
    assert module_api.get(f"{TENANT}/stock/{location}/levels").json()["levels"] == {"cap": -3}
    other = checkout(module_api, cart, location=location, order=f"other-{cart}")
    assert assert_problem(other, 409, "cart-closed")["order"] == f"o-{cart}"


@pytest.mark.parametrize(
    ("items", "body", "status", "slug"),
    [
        ((), {}, 422, "empty-cart"),
        ((("tee", 1),), {"location": "../x"}, 422, "validation-error"),
        ((("tee", 1),), {"actor": ""}, 422, "validation-error"),
        ((("tee", 1),), {"extra": True}, 422, "validation-error"),
    ],
)
def test_a_refused_checkout_writes_nothing(module_relay: InProcessRelay, module_api: httpx.Client,
                                           items: tuple[tuple[str, int], ...], body: dict[str, Any], status: int,
                                           slug: str) -> None:
    cart = new_id("c")
    fill(module_api, cart, *items)
    before = store_state(module_relay)
    assert_problem(checkout(module_api, cart, **body), status, slug)
    assert store_state(module_relay) == before
    assert module_api.get(f"{TENANT}/carts/{cart}").json()["status"] == "open"


def test_a_line_without_a_price_refuses_the_checkout(rest_relay: InProcessRelay) -> None:
    from harness.catalog import load_catalog

    with rest_relay.client(rest_relay.token("acme")) as api:
        fill(api, "c-unpriced", ("tee", 1), ("mug", 1))
    rest_relay.stop()
    load_catalog(rest_relay.data_dir, "acme", {"currency": "EUR", "prices": {"tee": 1299}})
    rest_relay.start()
    with rest_relay.client(rest_relay.token("acme")) as api:
        before = store_state(rest_relay)
        problem = assert_problem(checkout(api, "c-unpriced"), 422, "unknown-product")
        assert problem["products"] == ["mug"]
        assert store_state(rest_relay) == before


def test_a_token_must_cover_the_order_and_the_location(module_relay: InProcessRelay, module_api: httpx.Client) -> None:
    cart = new_id("c")
    fill(module_api, cart, ("tee", 1))
    with module_relay.client(module_relay.token("acme", f"acme/cart/{cart}", f"acme/order/{cart}")) as narrow:
        before = store_state(module_relay)
        problem = assert_problem(checkout(narrow, cart), 403, "forbidden")
        assert problem["detail"] == "the token does not cover stock/north"
        assert store_state(module_relay) == before
