"""Carts over REST against a real relay: reads, priced adds, deep match, set, remove, clear, guest merge."""

from __future__ import annotations

from unittest.mock import ANY

import threading
from typing import Any

import httpx
import pytest

from syncline.engine import line_key
from tests.rest.helpers import assert_problem, new_id, store_state
from tests.rest.inprocess import InProcessRelay

pytestmark = pytest.mark.timeout(60)

PRICES = {"tee": 1299, "mug": 450, "cap": 999, "sock": 300}


def cart_path(cart_id: str, rest: str = "") -> str:
    return f"/v1/tenants/acme/carts/{cart_id}{rest}"


def line(product: str, quantity: int, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    attributes = attributes or {}
    return {
        "id": line_key(product, attributes),
        "product": product,
        "attributes": attributes,
        "quantity": quantity,
        "unit_price": PRICES[product],
        "line_total": PRICES[product] * quantity,
    }


def cart(cart_id: str, *lines: dict[str, Any], status: str = "open", merged_into: str | None = None,
         merged_at: int | None = None, order: str | None = None, checked_out_at: int | None = None) -> dict[str, Any]:
    """The exact body a cart with these lines reads as (lines in line-id order)."""
    ordered = sorted(lines, key=lambda entry: entry["id"])
    return {
        "tenant": "acme",
        "id": cart_id,
        "status": status,
        "merged_into": merged_into,
        "merged_at": merged_at,
        "order": order,
        "checked_out_at": checked_out_at,
        "currency": "EUR" if lines else None,
        "lines": ordered,
        "total_quantity": sum(entry["quantity"] for entry in lines),
        "total": sum(entry["line_total"] for entry in lines),
        "issues": [],
        "last_accessed_at": ANY,  # tests/rest/test_cart_lifetimes.py checks it
    }


def add(api: httpx.Client, cart_id: str, product: str, quantity: int | None = None,
        attributes: dict[str, Any] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"product": product}
    if quantity is not None:
        body["quantity"] = quantity
    if attributes is not None:
        body["attributes"] = attributes
    return api.post(cart_path(cart_id, "/items"), json=body)


def test_a_cart_never_written_reads_as_empty_and_the_read_stores_nothing(
    module_relay: InProcessRelay, module_api: httpx.Client,
) -> None:
    cart_id = new_id("empty")
    before = store_state(module_relay)
    response = module_api.get(cart_path(cart_id))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == cart(cart_id)
    assert response.headers["etag"].startswith('"')
    assert store_state(module_relay) == before


def test_an_added_item_is_priced_from_the_catalog(module_api: httpx.Client) -> None:
    cart_id = new_id("priced")
    response = add(module_api, cart_id, "tee", 2, {"size": "M"})
    assert response.status_code == 200
    expected = cart(cart_id, line("tee", 2, {"size": "M"}))
    assert response.json() == expected
    assert expected["lines"][0]["unit_price"] == 1299 and expected["total"] == 2598
    read = module_api.get(cart_path(cart_id))
    assert read.json() == expected
    assert read.headers["etag"] == response.headers["etag"]
    # A quantity left out is 1; a second product adds a line and the total follows.
    assert add(module_api, cart_id, "mug").json() == cart(cart_id, line("tee", 2, {"size": "M"}), line("mug", 1))
    assert module_api.get(cart_path(cart_id)).json()["total"] == 2598 + 450


def test_a_price_sent_by_the_client_is_refused_not_trusted(module_relay: InProcessRelay,
                                                           module_api: httpx.Client) -> None:
    cart_id = new_id("trust")
    before = store_state(module_relay)
    response = module_api.post(cart_path(cart_id, "/items"), json={"product": "tee", "unit_price": 1})
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"] == [{"field": "unit_price", "reason": "unknown field (unknown: 'unit_price')"}]
    assert store_state(module_relay) == before


def test_the_same_attributes_in_another_key_order_are_the_same_line(module_api: httpx.Client) -> None:
    cart_id = new_id("deep")
    first = {"size": "M", "print": {"front": "logo", "back": ["a", "b"]}, "weight": 2}
    reordered = {"weight": 2.0, "print": {"back": ["a", "b"], "front": "logo"}, "size": "M"}
    add(module_api, cart_id, "tee", 2, first)
    body = add(module_api, cart_id, "tee", 3, reordered).json()
    assert body == cart(cart_id, line("tee", 5, first))
    assert len(body["lines"]) == 1
    # Different attributes (a nested value, a list order) are different lines.
    other_print = {"size": "M", "print": {"front": "logo", "back": ["b", "a"]}, "weight": 2}
    body = add(module_api, cart_id, "tee", 1, other_print).json()
    assert body == cart(cart_id, line("tee", 5, first), line("tee", 1, other_print))
    body = add(module_api, cart_id, "tee", 4, {"size": "L"}).json()
    assert body == cart(cart_id, line("tee", 5, first), line("tee", 1, other_print), line("tee", 4, {"size": "L"}))
    assert body["total_quantity"] == 10 and body["total"] == 10 * 1299


def test_setting_a_quantity_replaces_it_and_zero_removes_the_line(module_api: httpx.Client) -> None:
    cart_id = new_id("set")
    add(module_api, cart_id, "tee", 2)
    add(module_api, cart_id, "mug", 1)
    tee = line_key("tee", {})
    response = module_api.put(cart_path(cart_id, f"/lines/{tee}"), json={"quantity": 7})
    assert response.status_code == 200
    assert response.json() == cart(cart_id, line("tee", 7), line("mug", 1))
    response = module_api.put(cart_path(cart_id, f"/lines/{tee}"), json={"quantity": 0})
    assert response.json() == cart(cart_id, line("mug", 1))
    assert module_api.get(cart_path(cart_id)).json() == cart(cart_id, line("mug", 1))
    # The line is known (it had an item): setting it again brings it back.
    response = module_api.put(cart_path(cart_id, f"/lines/{tee}"), json={"quantity": 1})
    assert response.json() == cart(cart_id, line("tee", 1), line("mug", 1))


def test_removing_a_line_and_clearing_the_cart(module_api: httpx.Client) -> None:
    cart_id = new_id("remove")
    add(module_api, cart_id, "tee", 2)
    add(module_api, cart_id, "mug", 3)
    add(module_api, cart_id, "cap", 1, {"color": "red"})
    response = module_api.delete(cart_path(cart_id, f"/lines/{line_key('mug', {})}"))
    assert response.status_code == 200
    assert response.json() == cart(cart_id, line("tee", 2), line("cap", 1, {"color": "red"}))
    response = module_api.post(cart_path(cart_id, "/clear"))
    assert response.status_code == 200
    assert response.json() == cart(cart_id)
    assert module_api.get(cart_path(cart_id)).json() == cart(cart_id)
    # Clear takes an empty JSON object as well; anything else in it is refused.
    assert module_api.post(cart_path(cart_id, "/clear"), json={}).json() == cart(cart_id)
    assert_problem(module_api.post(cart_path(cart_id, "/clear"), json={"all": True}), 422, "validation-error")
    # Adding after a clear starts from zero.
    assert add(module_api, cart_id, "mug", 1).json() == cart(cart_id, line("mug", 1))


def test_an_unknown_line_is_a_404_problem_and_changes_nothing(module_relay: InProcessRelay,
                                                              module_api: httpx.Client) -> None:
    cart_id = new_id("noline")
    add(module_api, cart_id, "tee", 1)
    before = store_state(module_relay)
    unknown = line_key("mug", {})
    body = assert_problem(module_api.put(cart_path(cart_id, f"/lines/{unknown}"), json={"quantity": 2}),
                          404, "unknown-line")
    assert body["detail"] == f"no line {unknown}"
    assert_problem(module_api.delete(cart_path(cart_id, f"/lines/{unknown}")), 404, "unknown-line")
    for malformed in ("nope", "0" * 31, "0" * 33, unknown.upper()):
        assert_problem(module_api.delete(cart_path(cart_id, f"/lines/{malformed}")), 404, "unknown-line")
    assert store_state(module_relay) == before
    assert module_api.get(cart_path(cart_id)).json() == cart(cart_id, line("tee", 1))


def test_an_unknown_product_is_refused_and_nothing_is_stored(module_relay: InProcessRelay,
                                                              module_api: httpx.Client) -> None:
    cart_id = new_id("unknown")
    add(module_api, cart_id, "tee", 1)
    before = store_state(module_relay)
    response = add(module_api, cart_id, "unicorn", 1)
    body = assert_problem(response, 422, "unknown-product")
    assert body["product"] == "unicorn"
    assert store_state(module_relay) == before
    assert module_api.get(cart_path(cart_id)).json() == cart(cart_id, line("tee", 1))
    # Product ids are exact: another spelling has no price.
    assert_problem(add(module_api, new_id("unknown"), "TEE"), 422, "unknown-product")


def merge(api: httpx.Client, guest: str, into: str, **headers: str) -> httpx.Response:
    return api.post(cart_path(guest, "/merge"), json={"into": into}, headers=headers)


def test_a_guest_merge_sums_matching_lines_and_marks_the_guest_merged(module_api: httpx.Client) -> None:
    guest, user = new_id("guest"), new_id("user")
    add(module_api, guest, "tee", 2, {"size": "M", "color": "red"})
    add(module_api, guest, "mug", 1)
    add(module_api, user, "tee", 1, {"color": "red", "size": "M"})
    add(module_api, user, "cap", 1)
    response = merge(module_api, guest, user)
    assert response.status_code == 200
    body = response.json()
    target = cart(user, line("tee", 3, {"size": "M", "color": "red"}), line("mug", 1), line("cap", 1))
    assert body["cart"] == target
    merged_lines = sorted(
        [{"id": line_key("tee", {"size": "M", "color": "red"}), "product": "tee",
          "attributes": {"color": "red", "size": "M"}, "quantity": 2},
         {"id": line_key("mug", {}), "product": "mug", "attributes": {}, "quantity": 1}],
        key=lambda entry: entry["id"],
    )
    assert body["merge"] == {"source": guest, "target": user, "replayed": False, "lines": merged_lines}
    assert response.headers["etag"] == module_api.get(cart_path(user)).headers["etag"]
    assert module_api.get(cart_path(user)).json() == target
    guest_body = module_api.get(cart_path(guest)).json()
    assert isinstance(guest_body["merged_at"], int) and guest_body["merged_at"] > 0
    assert guest_body == cart(guest, line("tee", 2, {"size": "M", "color": "red"}), line("mug", 1),
                              status="merged", merged_into=user, merged_at=guest_body["merged_at"])


def test_replaying_a_merge_changes_nothing(module_relay: InProcessRelay, module_api: httpx.Client) -> None:
    guest, user = new_id("guest"), new_id("user")
    add(module_api, guest, "tee", 2)
    add(module_api, user, "tee", 1)
    first = merge(module_api, guest, user)
    assert first.json()["cart"] == cart(user, line("tee", 3))
    target_after = module_api.get(cart_path(user))
    guest_after = module_api.get(cart_path(guest))
    store_after = store_state(module_relay)
    for _ in range(2):
        replay = merge(module_api, guest, user)
        assert replay.status_code == 200
        assert replay.json()["merge"]["replayed"] is True
        assert replay.json()["cart"] == first.json()["cart"]
        assert replay.headers["etag"] == first.headers["etag"]
    assert module_api.get(cart_path(user)).json() == target_after.json()
    assert module_api.get(cart_path(user)).headers["etag"] == target_after.headers["etag"]
    assert module_api.get(cart_path(guest)).json() == guest_after.json()
    assert store_state(module_relay) == store_after  # a replay writes nothing at all
    # The user cart keeps working normally after the merge and its replays.
    assert add(module_api, user, "tee", 1).json() == cart(user, line("tee", 4))
    assert merge(module_api, guest, user).json()["cart"] == cart(user, line("tee", 4))


def test_a_merge_into_itself_or_a_bad_cart_id_is_refused(module_relay: InProcessRelay,
                                                         module_api: httpx.Client) -> None:
    guest = new_id("self")
    add(module_api, guest, "tee", 1)
    before = store_state(module_relay)
    body = assert_problem(merge(module_api, guest, guest), 422, "validation-error")
    assert body["errors"] == [{"field": "into", "reason": "a cart cannot be merged into itself"}]
    for bad in ("a/b", "../x", "", " x", "x" * 129, "-x", "é"):
        body = assert_problem(merge(module_api, guest, bad), 422, "validation-error")
        assert body["errors"][0]["field"] == "into"
    assert_problem(module_api.post(cart_path(guest, "/merge"), json={"into": 5}), 422, "validation-error")
    assert_problem(module_api.post(cart_path(guest, "/merge"), json={}), 422, "validation-error")
    assert store_state(module_relay) == before
    assert module_api.get(cart_path(guest)).json() == cart(guest, line("tee", 1))


def test_a_merged_cart_takes_no_more_edits(module_relay: InProcessRelay, module_api: httpx.Client) -> None:
    guest, user, other = new_id("guest"), new_id("user"), new_id("other")
    add(module_api, guest, "tee", 1)
    assert merge(module_api, guest, user).status_code == 200
    before = store_state(module_relay)
    tee = line_key("tee", {})
    refusals = [
        add(module_api, guest, "mug", 1),
        module_api.put(cart_path(guest, f"/lines/{tee}"), json={"quantity": 5}),
        module_api.delete(cart_path(guest, f"/lines/{tee}")),
        module_api.post(cart_path(guest, "/clear")),
    ]
    for response in refusals:
        body = assert_problem(response, 409, "cart-closed")
        assert body["merged_into"] == user
        assert body["state"] == "merged"
    body = assert_problem(merge(module_api, guest, other), 409, "already-merged")
    assert body["merged_into"] == user
    assert store_state(module_relay) == before
    # A closed cart cannot be a merge target either.
    second_guest = new_id("guest")
    add(module_api, second_guest, "mug", 1)
    before = store_state(module_relay)
    body = assert_problem(merge(module_api, second_guest, guest), 409, "cart-closed")
    assert body["merged_into"] == user
    assert store_state(module_relay) == before
    assert module_api.get(cart_path(guest)).json()["lines"] == [line("tee", 1)]
    assert module_api.get(cart_path(second_guest)).json() == cart(second_guest, line("mug", 1))


def run_together(count: int, relay: InProcessRelay, request: Any) -> list[httpx.Response]:
    """Send ``request(http)`` from ``count`` threads at once, each with its own connection."""
    responses: list[httpx.Response] = []
    lock = threading.Lock()
    barrier = threading.Barrier(count)

    def worker() -> None:
        with httpx.Client(base_url=relay.http_url, timeout=20.0,
                          headers={"Authorization": f"Bearer {relay.token('acme')}"}) as http:
            barrier.wait(timeout=10)
            response = request(http)
            with lock:
                responses.append(response)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(responses) == count
    return responses


def test_concurrent_adds_to_one_line_all_count(
    module_relay: InProcessRelay, module_api: httpx.Client,
) -> None:
    cart_id = new_id("together")
    responses = run_together(12, module_relay, lambda http: add(http, cart_id, "sock", 2))
    assert sorted(r.status_code for r in responses) == [200] * 12
    assert sorted(r.json()["total_quantity"] for r in responses) == list(range(2, 25, 2))
    assert module_api.get(cart_path(cart_id)).json() == cart(cart_id, line("sock", 24))


def test_concurrent_merges_of_one_guest_count_it_once(
    module_relay: InProcessRelay, module_api: httpx.Client,
) -> None:
    guest, user = new_id("guest"), new_id("user")
    add(module_api, guest, "mug", 2)
    add(module_api, user, "mug", 1)
    responses = run_together(6, module_relay, lambda http: merge(http, guest, user))
    assert [r.status_code for r in responses] == [200] * 6
    assert sorted(r.json()["merge"]["replayed"] for r in responses) == [False] + [True] * 5
    assert all(r.json()["cart"] == cart(user, line("mug", 3)) for r in responses)
    assert module_api.get(cart_path(user)).json() == cart(user, line("mug", 3))


def test_two_carts_merged_into_each_other_at_once_neither_deadlocks_nor_loops(
    module_relay: InProcessRelay, module_api: httpx.Client,
) -> None:
    first, second = new_id("a"), new_id("b")
    add(module_api, first, "tee", 1)
    add(module_api, second, "cap", 1)
    pairs = iter([(first, second), (second, first)] * 3)
    pick = threading.Lock()

    def request(http: httpx.Client) -> httpx.Response:
        with pick:
            guest, into = next(pairs)
        return merge(http, guest, into)

    responses = run_together(6, module_relay, request)
    codes = sorted(r.status_code for r in responses)
    assert set(codes) <= {200, 409} and 200 in codes, [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert response.json()["type"] in ("https://syncline.dev/problems/cart-closed",
                                               "https://syncline.dev/problems/already-merged")
    a, b = module_api.get(cart_path(first)).json(), module_api.get(cart_path(second)).json()
    # Exactly one of them is merged into the other, which holds both lines.
    assert sorted([a["status"], b["status"]]) == ["merged", "open"]
    target = a if a["status"] == "open" else b
    assert target["total_quantity"] == 2 and {entry["product"] for entry in target["lines"]} == {"tee", "cap"}


# -- a checked-out cart ------------------------------------------------------------------


def check_out_over_websocket(relay: InProcessRelay, cart_id: str, order: str, at: int) -> None:
    """A WebSocket peer (a till, say) checks the cart out; returns once the relay stored it."""
    import anyio

    from harness.ypeer import ypeer
    from syncline.engine import Cart

    async def main() -> None:
        async with ypeer(relay.url_for(f"acme/cart/{cart_id}"), acks=True) as peer:
            await peer.wait_until(lambda doc: len(Cart(doc, cart_id).view().lines) > 0)
            writes = peer.acked
            await peer.edit(lambda doc: Cart(doc, cart_id).check_out(order, at=at))
            await peer.wait_acked(writes + 1)

    anyio.run(main)


def test_a_checked_out_cart_shows_its_order_and_its_edits_are_409_problems_naming_it(
    module_relay: InProcessRelay, module_api: httpx.Client
) -> None:
    cart_id, other = new_id("paid"), new_id("other")
    add(module_api, cart_id, "tee", 2)
    check_out_over_websocket(module_relay, cart_id, "o-77", 1_700_000_000_123)
    body = module_api.get(cart_path(cart_id)).json()
    assert body == cart(cart_id, line("tee", 2), status="checked_out", order="o-77",
                        checked_out_at=1_700_000_000_123)
    add(module_api, other, "mug", 1)
    before = store_state(module_relay)
    tee = line_key("tee", {})
    refusals = [
        add(module_api, cart_id, "mug", 1),
        module_api.put(cart_path(cart_id, f"/lines/{tee}"), json={"quantity": 5}),
        module_api.delete(cart_path(cart_id, f"/lines/{tee}")),
        module_api.post(cart_path(cart_id, "/clear")),
        merge(module_api, cart_id, other),  # a checked-out cart is not merged anywhere
        merge(module_api, other, cart_id),  # nor merged into
    ]
    for response in refusals:
        problem = assert_problem(response, 409, "cart-closed")
        assert problem["state"] == "checked_out"
        assert problem["order"] == "o-77"
        assert problem["detail"] == "checked out into order o-77"
        assert "merged_into" not in problem
    assert module_api.get(cart_path(cart_id)).json() == body
    assert module_api.get(cart_path(other)).json() == cart(other, line("mug", 1))
    assert store_state(module_relay) == before  # nothing refused was stored
