"""Guest sessions: a guest cart and a token (or an HTTP-only cookie) for that cart alone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from syncline.engine.tokens import verify_token

from harness.relay_process import SECRET
from tests.rest.conftest import catalogued
from tests.rest.helpers import assert_problem
from tests.rest.inprocess import InProcessRelay
from tests.rest.test_feed import open_feed

SESSIONS = "/v1/tenants/{tenant}/guest-sessions"


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessRelay]:
    """A relay whose tenant ``acme`` (and only it) may have guests."""
    made = InProcessRelay(catalogued(tmp_path_factory.mktemp("guests") / "relay"), guest_tenant=("acme",),
                          guest_session_seconds=3600).start()
    try:
        yield made
    finally:
        made.stop()


def new_session(relay: InProcessRelay, **body: Any) -> httpx.Response:
    with relay.client() as anonymous:
        response = anonymous.post(SESSIONS.format(tenant="acme"), json=body or None)
    assert response.status_code == 201, response.text
    return response


def cookie_of(response: httpx.Response) -> dict[str, str]:
    """The attributes of the ``syncline_guest`` cookie the response sets (name as ``value``)."""
    (header,) = [h for h in response.headers.get_list("set-cookie") if h.startswith("syncline_guest=")]
    value, *attributes = [part.strip() for part in header.split(";")]
    parsed = {"value": value.partition("=")[2]}
    for attribute in attributes:
        key, _, val = attribute.partition("=")
        parsed[key.lower()] = val
    return parsed


def test_a_guest_session_is_a_new_cart_and_a_token_for_it_alone(relay: InProcessRelay) -> None:
    started = time.time()
    session = new_session(relay)
    body = session.json()
    cart = body["cart"]
    assert cart.startswith("guest-") and body["tenant"] == "acme" and body["cookie"] is False
    assert session.headers["location"] == f"/v1/tenants/acme/carts/{cart}"
    assert session.headers["cache-control"] == "no-store"
    grant = verify_token(SECRET, body["token"])
    assert grant.patterns == (f"acme/cart/{cart}",) and not grant.read_only
    assert grant.subject == f"guest:{cart}"
    assert grant.expires_at is not None and started + 3600 - 2 <= grant.expires_at <= time.time() + 3600
    assert body["expires_at"] == grant.expires_at * 1000
    assert new_session(relay).json()["cart"] != cart  # each session its own cart

    with relay.client(body["token"]) as guest:
        assert guest.post(f"/v1/tenants/acme/carts/{cart}/items", json={"product": "tee"}).status_code == 200
        read = guest.get(f"/v1/tenants/acme/carts/{cart}")
        assert read.status_code == 200 and read.json()["total_quantity"] == 1
        # Nothing else: another cart, stock, orders.
        assert_problem(guest.get("/v1/tenants/acme/carts/someone-else"), 403, "forbidden")
        assert_problem(guest.post("/v1/tenants/acme/carts/someone-else/items", json={"product": "tee"}),
                       403, "forbidden")
        assert_problem(guest.post("/v1/tenants/acme/stock/wh/adjustments", json={
            "id": "a1", "sku": "tee", "delta": -1, "reason": "sale", "actor": "guest"}), 403, "forbidden")
        assert_problem(guest.get("/v1/tenants/acme/orders/o-1"), 403, "forbidden")
        assert_problem(guest.get("/v1/tenants/globex/carts/x"), 403, "forbidden")


def test_guest_sessions_are_refused_for_a_tenant_not_named_by_guest_tenant(relay: InProcessRelay) -> None:
    with relay.client() as anonymous:
        problem = assert_problem(anonymous.post(SESSIONS.format(tenant="globex")), 403, "forbidden")
        assert problem["detail"] == "guest sessions are not enabled for this tenant"
        assert_problem(anonymous.post(SESSIONS.format(tenant="acme"), json={"cookie": "yes"}),
                       422, "validation-error")
        assert_problem(anonymous.post(SESSIONS.format(tenant="acme"), json={"other": 1}), 422, "validation-error")


def test_a_cookie_session_sets_an_http_only_secure_lax_cookie_that_rest_accepts(relay: InProcessRelay) -> None:
    session = new_session(relay, cookie=True)
    cart = session.json()["cart"]
    assert session.json()["token"] is None  # page scripts never see it
    cookie = cookie_of(session)
    assert {"httponly", "secure"} <= set(cookie)
    assert cookie["samesite"].lower() == "lax" and cookie["path"] == "/v1/" and cookie["max-age"] == "3600"
    with relay.client() as browser:
        jar = {"Cookie": f"syncline_guest={cookie['value']}"}
        added = browser.post(f"/v1/tenants/acme/carts/{cart}/items", json={"product": "mug", "quantity": 2},
                             headers=jar)
        assert added.status_code == 200, added.text
        assert browser.get(f"/v1/tenants/acme/carts/{cart}", headers=jar).json()["total_quantity"] == 2
        assert_problem(browser.get("/v1/tenants/acme/carts/other", headers=jar), 403, "forbidden")
        assert_problem(browser.get(f"/v1/tenants/acme/carts/{cart}",
                                   headers={"Cookie": "syncline_guest=forged"}), 401, "unauthorized")


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_change_feed_accepts_the_guest_cookie_and_shows_only_its_cart(
    relay: InProcessRelay, anyio_backend: str,
) -> None:
    session = await anyio.to_thread.run_sync(lambda: new_session(relay, cookie=True))
    cart = session.json()["cart"]
    jar = {"Cookie": f"syncline_guest={cookie_of(session)['value']}"}
    owner = relay.token("acme")
    async with httpx.AsyncClient(base_url=relay.http_url, headers=jar, timeout=10) as browser, \
            httpx.AsyncClient(base_url=relay.http_url, headers={"Authorization": f"Bearer {owner}"},
                              timeout=10) as shop:
        async with open_feed(browser) as feed:
            # Another cart's change is not the guest's to see; its own is.
            assert (await shop.post("/v1/tenants/acme/carts/not-yours/items", json={"product": "tee"})).status_code == 200
            assert (await browser.post(f"/v1/tenants/acme/carts/{cart}/items", json={"product": "tee"})).status_code == 200
            event = await feed.next()
            assert event.event == "cart.changed" and cart in event.data and "not-yours" not in event.data


def test_a_signing_in_shopper_merges_the_guest_cart_by_its_cookie_into_the_users_cart(
    relay: InProcessRelay,
) -> None:
    session = new_session(relay, cookie=True)
    guest_cart = session.json()["cart"]
    jar = {"Cookie": f"syncline_guest={cookie_of(session)['value']}"}
    user = relay.token("acme", "acme/cart/user-7")
    with relay.client() as browser, relay.client(user) as signed_in:
        browser.post(f"/v1/tenants/acme/carts/{guest_cart}/items", json={"product": "tee", "quantity": 2},
                     headers=jar)
        signed_in.post("/v1/tenants/acme/carts/user-7/items", json={"product": "tee"})
        # The user's token alone does not cover the guest cart.
        assert_problem(signed_in.post(f"/v1/tenants/acme/carts/{guest_cart}/merge", json={"into": "user-7"}),
                       403, "forbidden")
        # The guest cookie alone does not cover the user's cart.
        assert_problem(browser.post(f"/v1/tenants/acme/carts/{guest_cart}/merge", json={"into": "user-7"},
                                    headers=jar), 403, "forbidden")
        merged = signed_in.post(f"/v1/tenants/acme/carts/{guest_cart}/merge", json={"into": "user-7"}, headers=jar)
        assert merged.status_code == 200, merged.text
        assert merged.json()["cart"]["total_quantity"] == 3
        assert cookie_of(merged)["max-age"] == "0"  # the browser drops the guest cookie
        guest_view = browser.get(f"/v1/tenants/acme/carts/{guest_cart}", headers=jar).json()
        assert (guest_view["status"], guest_view["merged_into"]) == ("merged", "user-7")
        assert signed_in.get("/v1/tenants/acme/carts/user-7").json()["total_quantity"] == 3


def test_guest_sessions_are_rate_limited_by_client_address(tmp_path: Path) -> None:
    relay = InProcessRelay(catalogued(tmp_path / "relay"), guest_tenant=("acme",), rest_burst=3,
                           rest_rate_per_second=0.1).start()
    try:
        with relay.client() as anonymous:
            statuses = [anonymous.post(SESSIONS.format(tenant="acme")).status_code for _ in range(4)]
            assert statuses == [201, 201, 201, 429]
    finally:
        relay.stop()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_websocket_never_takes_the_guest_cookie_but_takes_the_guest_token(
    relay: InProcessRelay, anyio_backend: str,
) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    from syncline.engine import closecodes

    by_cookie = await anyio.to_thread.run_sync(lambda: new_session(relay, cookie=True))
    url = relay.url(f"acme/cart/{by_cookie.json()['cart']}")
    with anyio.fail_after(5):
        async with connect(url, additional_headers={"Cookie": f"syncline_guest={cookie_of(by_cookie)['value']}"}) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == closecodes.UNAUTHORIZED
    by_token = await anyio.to_thread.run_sync(lambda: new_session(relay))
    session = by_token.json()
    with anyio.fail_after(5):
        async with connect(relay.url(f"acme/cart/{session['cart']}", session["token"])) as ws:
            assert await ws.recv()  # the relay's sync step 1: admitted
