"""Idempotency keys and ETags over REST against a real relay, across graceful and SIGKILL restarts."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from syncline.engine import line_key
from harness.catalog import CATALOG, load_catalog
from tests.rest.helpers import assert_problem, client, fire_at_once, is_in_use, new_id, store_state
from harness.relay_process import RelayProcess
from tests.rest.inprocess import InProcessRelay

pytestmark = pytest.mark.timeout(120)

TEE = line_key("tee", {})


def cart_path(cart_id: str, rest: str = "", tenant: str = "acme") -> str:
    return f"/v1/tenants/{tenant}/carts/{cart_id}{rest}"


def stock_path(location: str, rest: str) -> str:
    return f"/v1/tenants/acme/stock/{location}{rest}"


def content(cart: dict[str, Any]) -> dict[str, Any]:
    """A cart's body without ``last_accessed_at``."""
    return {key: value for key, value in cart.items() if key != "last_accessed_at"}


def same_response(replay: httpx.Response, first: httpx.Response) -> None:
    """``replay`` is ``first`` again, byte for byte, marked as a replay."""
    assert replay.status_code == first.status_code
    assert replay.content == first.content
    assert replay.headers["etag"] == first.headers["etag"]
    assert replay.headers["content-type"] == first.headers["content-type"]
    assert replay.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers


# -- idempotency keys --------------------------------------------------------------------------------


def test_a_retried_post_returns_the_first_response_and_applies_once(module_relay: InProcessRelay,
                                                                   module_api: httpx.Client) -> None:
    cart_id = new_id("idem")
    key = {"Idempotency-Key": new_id("key")}
    first = module_api.post(cart_path(cart_id, "/items"), json={"product": "tee", "quantity": 2}, headers=key)
    assert first.status_code == 200
    assert first.json()["lines"][0]["quantity"] == 2
    stored = store_state(module_relay)
    for _ in range(3):
        same_response(module_api.post(cart_path(cart_id, "/items"), json={"quantity": 2, "product": "tee"},
                                      headers=key), first)
    assert store_state(module_relay) == stored
    read = module_api.get(cart_path(cart_id))
    assert read.json()["lines"][0]["quantity"] == 2
    assert read.json() == first.json()
    # Without the key the same request is a new add.
    assert module_api.post(cart_path(cart_id, "/items"), json={"product": "tee", "quantity": 2}) \
        .json()["lines"][0]["quantity"] == 4
    # The first response stays what it was, even though the cart has moved on.
    same_response(module_api.post(cart_path(cart_id, "/items"), json={"product": "tee", "quantity": 2},
                                  headers=key), first)


@pytest.mark.parametrize("write", ["set", "delete", "clear", "merge", "adjust", "batch", "resolve"])
def test_every_kind_of_write_replays_its_first_response(
    module_relay: InProcessRelay, module_api: httpx.Client, write: str,
) -> None:
    cart_id, location = new_id("w"), new_id("loc")
    module_api.post(cart_path(cart_id, "/items"), json={"product": "tee", "quantity": 3})
    module_api.post(stock_path(location, "/adjustments"),
                    json={"id": "s", "sku": "tee", "delta": -1, "reason": "sale", "actor": "a"})
    conflict = module_api.get(stock_path(location, "/conflicts")).json()["conflicts"][0]["id"]
    requests: dict[str, tuple[str, str, Any]] = {
        "set": ("PUT", cart_path(cart_id, f"/lines/{TEE}"), {"quantity": 1}),
        "delete": ("DELETE", cart_path(cart_id, f"/lines/{TEE}"), None),
        "clear": ("POST", cart_path(cart_id, "/clear"), {}),
        "merge": ("POST", cart_path(cart_id, "/merge"), {"into": new_id("user")}),
        "adjust": ("POST", stock_path(location, "/adjustments"),
                   {"id": "n", "sku": "mug", "delta": 2, "reason": "r", "actor": "a"}),
        "batch": ("POST", stock_path(location, "/batch"),
                  {"operations": [{"type": "adjust", "id": "b", "sku": "cap", "delta": 1, "reason": "r",
                                   "actor": "a"}]}),
        "resolve": ("POST", stock_path(location, f"/conflicts/{conflict}/resolve"),
                    {"strategy": "compensate", "actor": "mgr"}),
    }
    method, path, body = requests[write]
    key = {"Idempotency-Key": new_id("key")}
    first = module_api.request(method, path, json=body, headers=key)
    assert first.status_code in (200, 201), first.text
    stored = store_state(module_relay)
    same_response(module_api.request(method, path, json=body, headers=key), first)
    assert store_state(module_relay) == stored
    if write == "adjust":
        assert first.status_code == 201  # the replay is the first answer, not "200 created: false"


def test_the_same_key_with_another_request_is_refused(
    module_relay: InProcessRelay, module_api: httpx.Client,
) -> None:
    cart_id = new_id("reuse")
    key = {"Idempotency-Key": new_id("key")}
    first = module_api.post(cart_path(cart_id, "/items"), json={"product": "tee", "quantity": 1}, headers=key)
    assert first.status_code == 200
    stored = store_state(module_relay)
    others = [
        ("POST", cart_path(cart_id, "/items"), {"product": "tee", "quantity": 2}),   # another body
        ("POST", cart_path(cart_id, "/items"), {"product": "mug", "quantity": 1}),
        ("POST", cart_path(new_id("reuse"), "/items"), {"product": "tee", "quantity": 1}),  # another cart
        ("POST", cart_path(cart_id, "/clear"), {}),                                   # another endpoint
        ("PUT", cart_path(cart_id, f"/lines/{TEE}"), {"quantity": 1}),
        ("POST", stock_path("loc", "/adjustments"), {"id": "x", "sku": "tee", "delta": 1, "reason": "r",
                                                     "actor": "a"}),
    ]
    for method, path, body in others:
        problem = assert_problem(module_api.request(method, path, json=body, headers=key), 422,
                                 "idempotency-key-reused")
        assert problem["detail"] == "this key was first used with another request"
    assert store_state(module_relay) == stored
    assert module_api.get(cart_path(cart_id)).json()["total_quantity"] == 1


def test_an_error_is_not_remembered_so_a_corrected_retry_applies(module_api: httpx.Client) -> None:
    cart_id = new_id("err")
    key = {"Idempotency-Key": new_id("key")}
    stale = {"If-Match": '"stale"', **key}
    assert_problem(module_api.post(cart_path(cart_id, "/items"), json={"product": "tee"}, headers=stale),
                   412, "precondition-failed")
    response = module_api.post(cart_path(cart_id, "/items"), json={"product": "tee"}, headers=key)
    assert response.status_code == 200 and "idempotent-replayed" not in response.headers
    assert response.json()["total_quantity"] == 1


def test_a_key_is_scoped_to_its_tenant(module_relay: InProcessRelay, module_api: httpx.Client) -> None:
    cart_id = new_id("tenant")
    key = {"Idempotency-Key": new_id("shared-key")}
    acme = module_api.post(cart_path(cart_id, "/items"), json={"product": "tee", "quantity": 1}, headers=key)
    with client(module_relay, module_relay.token("globex")) as globex:
        # The same key and the same request shape on another tenant is a new request there...
        first = globex.post(cart_path(cart_id, "/items", "globex"), json={"product": "tee", "quantity": 1},
                            headers=key)
        assert first.status_code == 200 and "idempotent-replayed" not in first.headers
        assert first.json()["tenant"] == "globex"
        # ...and it does not even conflict with another body there.
        other = globex.post(cart_path(new_id("g"), "/items", "globex"), json={"product": "mug"},
                            headers={"Idempotency-Key": acme.request.headers["idempotency-key"] + "-2"})
        assert other.status_code == 200
        same_response(globex.post(cart_path(cart_id, "/items", "globex"), json={"product": "tee", "quantity": 1},
                                  headers=key), first)
    same_response(module_api.post(cart_path(cart_id, "/items"), json={"product": "tee", "quantity": 1},
                                  headers=key), acme)
    assert module_api.get(cart_path(cart_id)).json()["total_quantity"] == 1


def test_concurrent_requests_with_one_key_apply_once(
    module_relay: InProcessRelay, module_api: httpx.Client,
) -> None:
    cart_id = new_id("race")
    key = {"Idempotency-Key": new_id("key")}
    responses: list[httpx.Response] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def fire() -> None:
        with client(module_relay, module_relay.token("acme")) as http:
            start.wait(timeout=10)
            response = http.post(cart_path(cart_id, "/items"), json={"product": "cap", "quantity": 3}, headers=key)
            with lock:
                responses.append(response)

    threads = [threading.Thread(target=fire) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(responses) == 8
    applied = [r for r in responses if r.status_code == 200]
    assert applied, [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "idempotency-key-in-use")
            assert response.headers["retry-after"] == "1"
        else:
            assert response.content == applied[0].content
    assert module_api.get(cart_path(cart_id)).json()["total_quantity"] == 3
    assert module_api.post(cart_path(cart_id, "/items"), json={"product": "cap", "quantity": 3},
                           headers=key).content == applied[0].content


@pytest.mark.anyio
async def test_many_keys_each_sent_twice_at_once_apply_exactly_once(module_relay: InProcessRelay) -> None:
    """The single-node case of tests/cluster/test_idempotency.py: the same claim, on one relay."""
    cart_id = new_id("pairs")
    path = cart_path(cart_id, "/items")
    requests = [(0, f"{cart_id}-{n}", {"product": "tee", "quantity": 30, "attributes": {"n": n}})
                for n in range(20) for _ in range(2)]
    responses = await fire_at_once([module_relay], module_relay.token("acme"), path, requests)
    originals: dict[str, httpx.Response] = {}
    for (_, key, _), response in zip(requests, responses, strict=True):
        if response.status_code == 200 and "idempotent-replayed" not in response.headers:
            assert key not in originals, f"{key} was applied twice"
            originals[key] = response
    assert len(originals) == 20
    for (_, key, _), response in zip(requests, responses, strict=True):
        assert is_in_use(response) or response.content == originals[key].content
    with client(module_relay, module_relay.token("acme")) as http:
        lines = http.get(cart_path(cart_id)).json()["lines"]
    assert sorted((line["attributes"]["n"], line["quantity"]) for line in lines) == [(n, 30) for n in range(20)]


@pytest.mark.anyio
async def test_one_key_sent_at_once_with_two_bodies_applies_one_and_refuses_the_other(
    module_relay: InProcessRelay,
) -> None:
    """Whether the other request comes while the first runs or after it, it is a 422, never a 409
    (retrying it could never succeed)."""
    cart_id = new_id("two-bodies")
    path = cart_path(cart_id, "/items")
    for n in range(10):
        key = f"{cart_id}-{n}"
        first, second = await fire_at_once([module_relay], module_relay.token("acme"), path, [
            (0, key, {"product": "tee", "quantity": 1}), (0, key, {"product": "mug", "quantity": 1})])
        assert sorted([first.status_code, second.status_code]) == [200, 422], (first.text, second.text)
        assert_problem(first if first.status_code == 422 else second, 422, "idempotency-key-reused")
    with client(module_relay, module_relay.token("acme")) as http:
        cart = http.get(cart_path(cart_id)).json()
    assert cart["total_quantity"] == 10


@pytest.mark.parametrize("stop", ["terminate", "kill"])
def test_a_retry_after_a_relay_restart_returns_the_first_response(rest_relay_process: RelayProcess,
                                                                   stop: str) -> None:
    rest_relay = rest_relay_process  # SIGTERM and SIGKILL: a real process
    cart_id, location = new_id("restart"), new_id("loc")
    token = rest_relay.token("acme")
    with client(rest_relay, token) as http:
        add = http.post(cart_path(cart_id, "/items"), json={"product": "tee", "quantity": 2},
                        headers={"Idempotency-Key": "add-1"})
        adjust = http.post(stock_path(location, "/adjustments"), headers={"Idempotency-Key": "adjust-1"},
                           json={"id": "a", "sku": "tee", "delta": 5, "reason": "r", "actor": "a"})
        clear = http.post(cart_path(new_id("empty"), "/clear"), headers={"Idempotency-Key": "noop-1"})
        assert (add.status_code, adjust.status_code, clear.status_code) == (200, 201, 200)
        cart_etag = http.get(cart_path(cart_id)).headers["etag"]
        levels_etag = http.get(stock_path(location, "/levels")).headers["etag"]
    stored = store_state(rest_relay)
    if stop == "terminate":
        assert rest_relay.terminate() == 0
    else:
        rest_relay.kill()
    rest_relay.start()
    with client(rest_relay, token) as http:
        same_response(http.post(cart_path(cart_id, "/items"), json={"product": "tee", "quantity": 2},
                                headers={"Idempotency-Key": "add-1"}), add)
        same_response(http.post(stock_path(location, "/adjustments"), headers={"Idempotency-Key": "adjust-1"},
                                json={"id": "a", "sku": "tee", "delta": 5, "reason": "r", "actor": "a"}), adjust)
        same_response(http.post(cart_path(clear.json()["id"], "/clear"), headers={"Idempotency-Key": "noop-1"}),
                      clear)
        assert_problem(http.post(cart_path(cart_id, "/items"), json={"product": "tee", "quantity": 3},
                                 headers={"Idempotency-Key": "add-1"}), 422, "idempotency-key-reused")
        cart = http.get(cart_path(cart_id))
        # The same content; when it was last accessed is no part of it (nor of its ETag).
        assert content(cart.json()) == content(add.json()) and cart.json()["total_quantity"] == 2
        # ETags are digests of the content: the same after a restart.
        assert cart.headers["etag"] == cart_etag
        levels = http.get(stock_path(location, "/levels"))
        assert levels.json()["levels"] == {"tee": 5} and levels.headers["etag"] == levels_etag
        assert http.get(cart_path(cart_id), headers={"If-None-Match": cart_etag}).status_code == 304
    # Nothing was written after the restart (a graceful stop may compact the log into snapshots).
    stored_after = store_state(rest_relay)
    assert stored_after["changes"] == stored["changes"] and stored_after["responses"] == stored["responses"]
    assert stored["changes"] and len(stored["responses"]) == 3


# -- ETags --------------------------------------------------------------------------------------------


def reads(cart_id: str, location: str) -> list[str]:
    return [cart_path(cart_id), stock_path(location, "/levels"), stock_path(location, "/levels/tee"),
            stock_path(location, "/history"), stock_path(location, "/history?limit=1&sku=tee"),
            stock_path(location, "/conflicts")]


def test_every_read_has_an_etag_that_if_none_match_answers_with_304(module_api: httpx.Client) -> None:
    cart_id, location = new_id("etag"), new_id("loc")
    module_api.post(cart_path(cart_id, "/items"), json={"product": "tee"})
    module_api.post(stock_path(location, "/adjustments"),
                    json={"id": "a", "sku": "tee", "delta": 1, "reason": "r", "actor": "a"})
    for path in reads(cart_id, location):
        response = module_api.get(path)
        assert response.status_code == 200
        tag = response.headers["etag"]
        assert tag.startswith('"') and tag.endswith('"') and len(tag) > 2
        assert module_api.get(path).headers["etag"] == tag  # stable while nothing changes
        for header in (tag, f"W/{tag}", "*", f'"other", {tag}'):
            not_modified = module_api.get(path, headers={"If-None-Match": header})
            assert not_modified.status_code == 304, (path, header)
            assert not_modified.content == b""
            assert not_modified.headers["etag"] == tag
        fresh = module_api.get(path, headers={"If-None-Match": '"other"'})
        assert fresh.status_code == 200 and fresh.content == response.content


def test_the_etag_changes_exactly_when_the_content_does(module_relay: InProcessRelay,
                                                        module_api: httpx.Client) -> None:
    cart_id = new_id("etag")
    tags = [module_api.get(cart_path(cart_id)).headers["etag"]]
    add = module_api.post(cart_path(cart_id, "/items"), json={"product": "tee", "quantity": 2})
    tags.append(add.headers["etag"])
    assert module_api.get(cart_path(cart_id)).headers["etag"] == add.headers["etag"]
    tags.append(module_api.put(cart_path(cart_id, f"/lines/{TEE}"), json={"quantity": 5}).headers["etag"])
    # Setting the quantity it already has, or clearing twice: the same content, the same tag.
    same = module_api.put(cart_path(cart_id, f"/lines/{TEE}"), json={"quantity": 5})
    assert same.headers["etag"] == tags[-1]
    tags.append(module_api.post(cart_path(cart_id, "/clear")).headers["etag"])
    assert module_api.post(cart_path(cart_id, "/clear")).headers["etag"] == tags[-1]
    # An empty cart after edits reads like one never written: same body, same tag.
    assert tags[-1] == tags[0] and len(set(tags)) == 3
    location = new_id("loc")
    stock_tags = [module_api.get(stock_path(location, "/levels")).headers["etag"]]
    for delta in (1, 1, -3):
        body = {"id": new_id("a"), "sku": "tee", "delta": delta, "reason": "r", "actor": "a", "at": 1}
        response = module_api.post(stock_path(location, "/adjustments"), json=body)
        stock_tags.append(response.headers["etag"])
        assert module_api.get(stock_path(location, "/levels")).headers["etag"] == stock_tags[-1]
        replay = module_api.post(stock_path(location, "/adjustments"), json=body)
        assert replay.status_code == 200 and replay.headers["etag"] == stock_tags[-1]
    assert len(set(stock_tags)) == 4


@pytest.mark.parametrize("write", ["add", "set", "delete", "clear", "merge", "adjust", "batch", "resolve"])
def test_a_stale_if_match_is_a_412_and_stores_nothing(module_relay: InProcessRelay, module_api: httpx.Client,
                                                      write: str) -> None:
    cart_id, location, user = new_id("ifm"), new_id("loc"), new_id("user")
    module_api.post(cart_path(cart_id, "/items"), json={"product": "tee", "quantity": 3})
    module_api.post(stock_path(location, "/adjustments"),
                    json={"id": "s", "sku": "tee", "delta": -1, "reason": "sale", "actor": "a"})
    conflict = module_api.get(stock_path(location, "/conflicts")).json()["conflicts"][0]["id"]
    requests: dict[str, tuple[str, str, Any, str]] = {
        "add": ("POST", cart_path(cart_id, "/items"), {"product": "mug"}, cart_path(cart_id)),
        "set": ("PUT", cart_path(cart_id, f"/lines/{TEE}"), {"quantity": 1}, cart_path(cart_id)),
        "delete": ("DELETE", cart_path(cart_id, f"/lines/{TEE}"), None, cart_path(cart_id)),
        "clear": ("POST", cart_path(cart_id, "/clear"), {}, cart_path(cart_id)),
        "merge": ("POST", cart_path(cart_id, "/merge"), {"into": user}, cart_path(user)),
        "adjust": ("POST", stock_path(location, "/adjustments"),
                   {"id": "n", "sku": "mug", "delta": 2, "reason": "r", "actor": "a"}, stock_path(location, "/levels")),
        "batch": ("POST", stock_path(location, "/batch"),
                  {"operations": [{"type": "adjust", "id": "b", "sku": "cap", "delta": 1, "reason": "r",
                                   "actor": "a"}]}, stock_path(location, "/levels")),
        "resolve": ("POST", stock_path(location, f"/conflicts/{conflict}/resolve"),
                    {"strategy": "accept", "actor": "mgr"}, stock_path(location, "/levels")),
    }
    method, path, body, resource = requests[write]
    current = module_api.get(resource).headers["etag"]
    before = store_state(module_relay)
    for stale in ('"0123456789abcdef0123456789abcdef"', f"W/{current}", '"", "x"', current[:-2] + '"'):
        response = module_api.request(method, path, json=body, headers={"If-Match": stale})
        assert_problem(response, 412, "precondition-failed")
        assert response.headers["etag"] == current
    assert store_state(module_relay) == before
    # The current tag (alone or among others) lets the write through; its answer carries the new tag.
    response = module_api.request(method, path, json=body, headers={"If-Match": f'"old", {current}'})
    assert response.status_code in (200, 201), response.text
    assert response.headers["etag"] != current
    assert response.headers["etag"] == module_api.get(resource).headers["etag"]
    # That tag is now stale in turn.
    assert_problem(module_api.request(method, path, json=body, headers={"If-Match": current}), 412,
                   "precondition-failed")


def test_if_match_star_always_passes(module_api: httpx.Client) -> None:
    cart_id = new_id("star")
    response = module_api.post(cart_path(cart_id, "/items"), json={"product": "sock"}, headers={"If-Match": "*"})
    assert response.status_code == 200 and response.json()["total"] == 300


def test_a_price_change_changes_the_etag_at_once(rest_relay: InProcessRelay) -> None:
    cart_id = new_id("price")
    with client(rest_relay, rest_relay.token("acme")) as http:
        first = http.post(cart_path(cart_id, "/items"), json={"product": "sock", "quantity": 2})
        assert first.json()["total"] == 600
        load_catalog(rest_relay.data_dir, "acme", {**CATALOG, "prices": {**CATALOG["prices"], "sock": 350}})  # type: ignore[dict-item]
        read = http.get(cart_path(cart_id), headers={"If-None-Match": first.headers["etag"]})
        assert read.status_code == 200
        assert read.json()["lines"][0]["unit_price"] == 350 and read.json()["total"] == 700
        assert read.headers["etag"] != first.headers["etag"]
        # The old tag is stale for writes too.
        assert_problem(http.post(cart_path(cart_id, "/items"), json={"product": "sock"},
                                 headers={"If-Match": first.headers["etag"]}), 412, "precondition-failed")


def test_a_key_is_kept_across_restarts_until_its_ttl_then_forgotten(rest_relay: InProcessRelay) -> None:
    cart_id = new_id("ttl")
    key = {"Idempotency-Key": "ttl-1"}
    token = rest_relay.token("acme")
    with client(rest_relay, token) as http:
        first = http.post(cart_path(cart_id, "/items"), json={"product": "mug"}, headers=key)
    assert rest_relay.terminate() == 0
    # Back with a one-second TTL and a clock 1.2 s ahead (rather than sleeping the TTL out).
    rest_relay.start(idempotency_ttl_seconds=1, clock=lambda: time.time() + 1.2)
    deadline = time.monotonic() + 10  # it prunes at start: the key is older than its TTL
    while any(kept == "ttl-1" for _, kept, _ in store_state(rest_relay)["responses"]):
        assert time.monotonic() < deadline, "the key outlived its TTL"
        time.sleep(0.01)
    with client(rest_relay, token) as http:
        again = http.post(cart_path(cart_id, "/items"), json={"product": "mug"}, headers=key)
        assert again.status_code == 200 and "idempotent-replayed" not in again.headers
        assert again.json()["total_quantity"] == 2 and first.json()["total_quantity"] == 1
        # ...and the new answer is the one kept now.
        same_response(http.post(cart_path(cart_id, "/items"), json={"product": "mug"}, headers=key), again)
