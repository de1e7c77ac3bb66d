"""Tokens and hostile input at the REST boundary: the right problem, never a 500, nothing stored."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from syncline.engine import line_key
from syncline.engine.tokens import issue_token
from harness.catalog import CATALOG, load_catalog
from tests.rest.helpers import assert_problem, client, new_id, store_state
from harness.relay_process import SECRET
from tests.rest.inprocess import InProcessRelay

pytestmark = pytest.mark.timeout(120)

TEE = line_key("tee", {})
ADJUSTMENT = {"id": "adj-1", "sku": "tee", "delta": 1, "reason": "count", "actor": "ann"}

# Every REST endpoint, with a body it would accept: (method, path under the tenant, JSON body or None).
READS = [
    ("GET", "/carts/c-auth", None),
    ("GET", "/stock/s-auth/levels", None),
    ("GET", "/stock/s-auth/levels/tee", None),
    ("GET", "/stock/s-auth/history", None),
    ("GET", "/stock/s-auth/conflicts", None),
]
CART_WRITES = [
    ("POST", "/carts/c-auth/items", {"product": "tee", "quantity": 1}),
    ("PUT", f"/carts/c-auth/lines/{TEE}", {"quantity": 3}),
    ("DELETE", f"/carts/c-auth/lines/{TEE}", None),
    ("POST", "/carts/c-auth/clear", {}),
    ("POST", "/carts/c-auth/merge", {"into": "c-auth-user"}),
    ("POST", "/carts/c-auth/checkout", {"location": "s-auth", "actor": "ann"}),
]
STOCK_WRITES = [
    ("POST", "/stock/s-auth/adjustments", ADJUSTMENT),
    ("POST", "/stock/s-auth/batch", {"operations": [{"type": "adjust", **ADJUSTMENT}]}),
    ("POST", "/stock/s-auth/counts", {"id": "cnt-1", "sku": "tee", "counted": 3, "actor": "ann"}),
    ("POST", "/stock/s-auth/conflicts/negative_level:000000000000000000000000/resolve",
     {"strategy": "accept", "actor": "ann"}),
]
ORDER_READS = [("GET", "/orders/o-auth", None)]  # 404 for a token that may read it: no order is placed
ORDER_WRITES = [
    ("POST", "/orders/o-auth/stage", {"stage": "ready", "actor": "ann"}),
    ("POST", "/orders/o-auth/payment", {"status": "paid", "actor": "ann"}),
    ("POST", "/orders/o-auth/cancel", {"actor": "ann"}),
]
WRITES = CART_WRITES + STOCK_WRITES + ORDER_WRITES
ENDPOINTS = READS + ORDER_READS + WRITES


def send(http: httpx.Client, method: str, path: str, body: Any, tenant: str = "acme",
         **kwargs: Any) -> httpx.Response:
    return http.request(method, f"/v1/tenants/{tenant}{path}", json=body, **kwargs)


@pytest.fixture(scope="module")
def anonymous(module_relay: InProcessRelay) -> Iterator[httpx.Client]:
    with client(module_relay, None) as http:
        yield http


def test_the_endpoint_lists_cover_every_tenant_route() -> None:
    from syncline.adapters.rest.routes import rest_routes

    routes = {(method, getattr(route, "path")) for route in rest_routes()
              for method in getattr(route, "methods", None) or () if method != "HEAD"}
    tenant_routes = {(method, path) for method, path in routes if path.startswith("/v1/tenants/")}
    covered = set()
    for method, path, _ in ENDPOINTS:
        for concrete, template in (("c-auth-user", "{into}"), ("c-auth", "{cart_id}"), ("s-auth", "{location_id}"),
                                   ("o-auth", "{order_id}"),
                                   (TEE, "{line_id}"), ("/levels/tee", "/levels/{sku}"),
                                   ("negative_level:000000000000000000000000", "{conflict_id}")):
            path = path.replace(concrete, template)
        covered.add((method, "/v1/tenants/{tenant}" + path))
    # Tenant-wide routes (no document in the path) have their own token tests: test_feed.py,
    # test_catalog.py, test_live.py; guest sessions need no token (test_guest_sessions.py).
    tenant_wide = {("GET", "/v1/tenants/{tenant}/events"), ("GET", "/v1/tenants/{tenant}/catalog"),
                   ("GET", "/v1/tenants/{tenant}/orders"),
                   ("GET", "/v1/tenants/{tenant}/live/sync-state"), ("POST", "/v1/tenants/{tenant}/live/broadcast"),
                   ("POST", "/v1/tenants/{tenant}/live/ping"), ("POST", "/v1/tenants/{tenant}/guest-sessions")}
    assert tenant_routes - tenant_wide == covered


# -- tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_no_token_is_a_401_with_a_bearer_challenge(module_relay: InProcessRelay, anonymous: httpx.Client,
                                                   method: str, path: str, body: Any) -> None:
    before = store_state(module_relay)
    response = send(anonymous, method, path, body)
    problem = assert_problem(response, 401, "unauthorized")
    assert problem["detail"] == "send Authorization: Bearer TOKEN"
    assert response.headers["www-authenticate"] == 'Bearer realm="syncline"'
    assert store_state(module_relay) == before


def forged_tokens() -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": "syncline", "tenant": "acme", "docs": ["acme/*"], "ro": False, "iat": now}
    return {
        "garbage": "not-a-token",
        "other-secret": issue_token("another-secret-" + "y" * 40, "acme", ["acme/*"]),
        "alg-none": jwt.encode(claims, None, algorithm="none"),
        "tampered": _tampered(),
        "expired": issue_token(SECRET, "acme", ["acme/*"], ttl_seconds=60, now=time.time() - 3600),
    }


def _tampered() -> str:
    header, payload, signature = issue_token(SECRET, "globex", ["globex/*"]).split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["tenant"], claims["docs"] = "acme", ["acme/*"]
    forged = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize("kind", ["garbage", "other-secret", "alg-none", "tampered", "expired"])
def test_a_bad_forged_or_expired_token_is_a_401(module_relay: InProcessRelay, kind: str) -> None:
    token = forged_tokens()[kind]
    before = store_state(module_relay)
    with client(module_relay, token) as http:
        for method, path, body in ENDPOINTS:
            response = send(http, method, path, body)
            problem = assert_problem(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == 'Bearer realm="syncline", error="invalid_token"'
            expected = "the token has expired" if kind == "expired" else "the token is not valid"
            assert problem["detail"] == expected
    # The query parameter is checked as strictly as the header.
    with client(module_relay, None) as http:
        assert_problem(http.get("/v1/tenants/acme/carts/c-auth", params={"token": token}), 401, "unauthorized")
    assert store_state(module_relay) == before


def test_other_authorization_schemes_are_a_401(module_relay: InProcessRelay, anonymous: httpx.Client) -> None:
    token = module_relay.token("acme")
    for value in (f"Basic {token}", "Bearer", token, f"Token {token}", f"Bearer {token}x"):
        response = anonymous.get("/v1/tenants/acme/carts/c-auth", headers={"Authorization": value})
        assert_problem(response, 401, "unauthorized")
    # Bearer is case-insensitive and a token in the query works where headers cannot be set.
    assert anonymous.get("/v1/tenants/acme/carts/c-auth", headers={"Authorization": f"bearer {token}"}) \
        .status_code == 200
    assert anonymous.get("/v1/tenants/acme/carts/c-auth", params={"token": token}).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_another_tenants_token_is_a_403(
    module_relay: InProcessRelay, method: str, path: str, body: Any,
) -> None:
    before = store_state(module_relay)
    with client(module_relay, module_relay.token("globex")) as http:
        problem = assert_problem(send(http, method, path, body), 403, "forbidden")
    assert problem["detail"] == "the token belongs to another tenant"
    assert store_state(module_relay) == before


def test_a_token_for_carts_cannot_touch_stock(module_relay: InProcessRelay) -> None:
    location = new_id("s")
    with client(module_relay, module_relay.token("acme", "acme/cart/*")) as http:
        before = store_state(module_relay)
        for method, path, body in [*READS[1:], *STOCK_WRITES]:
            response = send(http, method, path.replace("s-auth", location), body)
            problem = assert_problem(response, 403, "forbidden")
            assert problem["detail"] == f"the token does not cover stock/{location}"
        assert store_state(module_relay) == before
        # ...and it does work on carts.
        cart_id = new_id("c")
        assert send(http, "POST", f"/carts/{cart_id}/items", {"product": "tee"}).status_code == 200
        assert send(http, "GET", f"/carts/{cart_id}", None).json()["total_quantity"] == 1


def test_a_token_for_one_cart_cannot_merge_it_into_another(module_relay: InProcessRelay,
                                                           module_api: httpx.Client) -> None:
    guest, user = new_id("guest"), new_id("user")
    module_api.post(f"/v1/tenants/acme/carts/{guest}/items", json={"product": "tee"})
    with client(module_relay, module_relay.token("acme", f"acme/cart/{guest}")) as http:
        before = store_state(module_relay)
        problem = assert_problem(send(http, "POST", f"/carts/{guest}/merge", {"into": user}), 403, "forbidden")
        assert problem["detail"] == f"the token does not cover cart/{user}"
        assert_problem(send(http, "GET", f"/carts/{user}", None), 403, "forbidden")
        assert store_state(module_relay) == before
    assert module_api.get(f"/v1/tenants/acme/carts/{guest}").json()["status"] == "open"


def test_a_read_only_token_reads_but_every_write_is_a_403(module_relay: InProcessRelay,
                                                          module_api: httpx.Client) -> None:
    # Give the documents some content first, so that the refused writes would change something.
    module_api.post("/v1/tenants/acme/carts/c-auth/items", json={"product": "tee", "quantity": 2})
    module_api.post("/v1/tenants/acme/stock/s-auth/adjustments", json=ADJUSTMENT)
    with client(module_relay, module_relay.token("acme", read_only=True)) as http:
        for method, path, body in READS:
            response = send(http, method, path, body)
            assert response.status_code == 200, response.text
            assert response.json() == module_api.request(method, f"/v1/tenants/acme{path}").json()
        before = store_state(module_relay)
        for method, path, body in WRITES:
            problem = assert_problem(send(http, method, path, body), 403, "read-only")
            assert problem["detail"] == "this token may read but not write"
            # Bad bodies do not get past the token check either.
            response = http.request(method, f"/v1/tenants/acme{path}", content=b"{nope",
                                    headers={"Content-Type": "text/plain", "Idempotency-Key": ""})
            assert_problem(response, 403, "read-only")
        assert store_state(module_relay) == before


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_the_token_is_checked_before_the_body(module_relay: InProcessRelay, anonymous: httpx.Client,
                                              method: str, path: str, body: Any) -> None:
    """An unauthenticated client learns nothing from validation: 401 whatever it sends."""
    for content, content_type in ((b"{nope", "application/json"), (b"x" * 10, "text/plain"),
                                  (b'{"unknown": 1}', "application/json")):
        response = anonymous.request(method, f"/v1/tenants/acme{path.replace(TEE, 'zz')}", content=content,
                                     headers={"Content-Type": content_type})
        assert_problem(response, 401, "unauthorized")


# -- hostile bodies ----------------------------------------------------------------------------

CART = "/v1/tenants/acme/carts/c-bad"
ITEMS = CART + "/items"
STOCK = "/v1/tenants/acme/stock/s-bad"
JSON_TYPE = "application/json"

BAD_BODIES: list[tuple[str, str, str, bytes, str, int, str]] = [
    # (name, method, path, body, content type, status, problem)
    ("text/plain", "POST", ITEMS, b'{"product":"tee"}', "text/plain", 415, "unsupported-media-type"),
    ("no content type", "POST", ITEMS, b'{"product":"tee"}', "", 415, "unsupported-media-type"),
    ("form", "POST", ITEMS, b"product=tee", "application/x-www-form-urlencoded", 415, "unsupported-media-type"),
    ("json-ish", "POST", ITEMS, b'{"product":"tee"}', "application/json-patch+json", 415, "unsupported-media-type"),
    ("latin-1", "POST", ITEMS, b'{"product":"tee"}', "application/json; charset=latin-1", 415,
     "unsupported-media-type"),
    ("empty", "POST", ITEMS, b"", JSON_TYPE, 400, "malformed-json"),
    ("truncated", "POST", ITEMS, b'{"product":"tee"', JSON_TYPE, 400, "malformed-json"),
    ("single quotes", "POST", ITEMS, b"{'product':'tee'}", JSON_TYPE, 400, "malformed-json"),
    ("trailing comma", "POST", ITEMS, b'{"product":"tee",}', JSON_TYPE, 400, "malformed-json"),
    ("two documents", "POST", ITEMS, b'{"product":"tee"}{"product":"tee"}', JSON_TYPE, 400, "malformed-json"),
    ("comment", "POST", ITEMS, b'{"product":"tee"/*x*/}', JSON_TYPE, 400, "malformed-json"),
    ("bom", "POST", ITEMS, b'\xef\xbb\xbf{"product":"tee"}', JSON_TYPE, 400, "malformed-json"),
    ("not utf-8", "POST", ITEMS, b'{"product":"t\xe9e"}', JSON_TYPE, 400, "malformed-json"),
    ("utf-16", "POST", ITEMS, '{"product":"tee"}'.encode("utf-16"), JSON_TYPE, 400, "malformed-json"),
    ("NaN", "POST", ITEMS, b'{"product":"tee","quantity":NaN}', JSON_TYPE, 400, "malformed-json"),
    ("Infinity", "POST", ITEMS, b'{"product":"tee","attributes":{"w":Infinity}}', JSON_TYPE, 400,
     "malformed-json"),
    ("-Infinity", "POST", STOCK + "/adjustments", b'{"id":"a","sku":"tee","delta":-Infinity,"reason":"r",'
     b'"actor":"a"}', JSON_TYPE, 400, "malformed-json"),
    ("duplicate keys", "POST", ITEMS, b'{"product":"tee","product":"unicorn"}', JSON_TYPE, 400, "malformed-json"),
    ("nested duplicate keys", "POST", ITEMS, b'{"product":"tee","attributes":{"a":1,"a":2}}', JSON_TYPE, 400,
     "malformed-json"),
    ("lone surrogate", "POST", ITEMS, b'{"product":"\\ud800"}', JSON_TYPE, 400, "malformed-json"),
    ("lone surrogate key", "POST", ITEMS, b'{"product":"tee","attributes":{"\\udfff":1}}', JSON_TYPE, 400,
     "malformed-json"),
    ("escaped NUL", "POST", ITEMS, b'{"product":"t\\u0000ee"}', JSON_TYPE, 422, "validation-error"),
    ("17 levels", "POST", ITEMS, b'{"product":"tee","attributes":' + b'{"a":' * 16 + b"1" + b"}" * 17,
     JSON_TYPE, 400, "malformed-json"),
    ("100000 levels", "POST", ITEMS, b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", JSON_TYPE, 400,
     "malformed-json"),
    ("top-level array", "POST", ITEMS, b'[{"product":"tee"}]', JSON_TYPE, 400, "malformed-json"),
    ("top-level string", "POST", ITEMS, b'"tee"', JSON_TYPE, 400, "malformed-json"),
    ("top-level null", "POST", ITEMS, b"null", JSON_TYPE, 400, "malformed-json"),
    ("top-level number", "POST", ITEMS, b"1", JSON_TYPE, 400, "malformed-json"),
    ("5000-digit integer", "POST", ITEMS, b'{"product":"tee","quantity":' + b"7" * 5000 + b"}", JSON_TYPE, 400,
     "malformed-json"),
    ("5000-digit attribute", "POST", ITEMS, b'{"product":"tee","attributes":{"w":-' + b"7" * 5000 + b"}}",
     JSON_TYPE, 400, "malformed-json"),
    ("unknown field", "POST", ITEMS, b'{"product":"tee","price":1}', JSON_TYPE, 422, "validation-error"),
    ("missing product", "POST", ITEMS, b'{"quantity":1}', JSON_TYPE, 422, "validation-error"),
    ("bool quantity", "POST", ITEMS, b'{"product":"tee","quantity":true}', JSON_TYPE, 422, "validation-error"),
    ("float quantity", "POST", ITEMS, b'{"product":"tee","quantity":1.5}', JSON_TYPE, 422, "validation-error"),
    ("integral float quantity", "POST", ITEMS, b'{"product":"tee","quantity":2.0}', JSON_TYPE, 422,
     "validation-error"),
    ("exponent quantity", "POST", ITEMS, b'{"product":"tee","quantity":1e2}', JSON_TYPE, 422, "validation-error"),
    ("string quantity", "POST", ITEMS, b'{"product":"tee","quantity":"2"}', JSON_TYPE, 422, "validation-error"),
    ("null quantity", "POST", ITEMS, b'{"product":"tee","quantity":null}', JSON_TYPE, 422, "validation-error"),
    ("null attributes", "POST", ITEMS, b'{"product":"tee","attributes":null}', JSON_TYPE, 422, "validation-error"),
    ("set: null quantity", "PUT", f"{CART}/lines/{TEE}", b'{"quantity":null}', JSON_TYPE, 422, "validation-error"),
    ("zero quantity", "POST", ITEMS, b'{"product":"tee","quantity":0}', JSON_TYPE, 422, "validation-error"),
    ("negative quantity", "POST", ITEMS, b'{"product":"tee","quantity":-1}', JSON_TYPE, 422, "validation-error"),
    ("quantity too large", "POST", ITEMS, b'{"product":"tee","quantity":100001}', JSON_TYPE, 422,
     "validation-error"),
    ("quantity 2**64", "POST", ITEMS, b'{"product":"tee","quantity":18446744073709551616}', JSON_TYPE, 422,
     "validation-error"),
    ("product number", "POST", ITEMS, b'{"product":5}', JSON_TYPE, 422, "validation-error"),
    ("product empty", "POST", ITEMS, b'{"product":""}', JSON_TYPE, 422, "validation-error"),
    ("product padded", "POST", ITEMS, b'{"product":" tee"}', JSON_TYPE, 422, "validation-error"),
    ("product too long", "POST", ITEMS, b'{"product":"' + b"t" * 129 + b'"}', JSON_TYPE, 422, "validation-error"),
    ("product newline", "POST", ITEMS, b'{"product":"te\\ne"}', JSON_TYPE, 422, "validation-error"),
    ("attributes array", "POST", ITEMS, b'{"product":"tee","attributes":[1]}', JSON_TYPE, 422, "validation-error"),
    ("attributes string", "POST", ITEMS, b'{"product":"tee","attributes":"M"}', JSON_TYPE, 422,
     "validation-error"),
    ("attributes 1e400", "POST", ITEMS, b'{"product":"tee","attributes":{"w":1e400}}', JSON_TYPE, 422,
     "validation-error"),
    ("attributes 2**60", "POST", ITEMS, b'{"product":"tee","attributes":{"w":1152921504606846976}}', JSON_TYPE,
     422, "validation-error"),
    ("attributes 33 keys", "POST", ITEMS, json.dumps({"product": "tee", "attributes": {
        f"k{n}": n for n in range(33)}}).encode(), JSON_TYPE, 422, "validation-error"),
    ("attributes 6 deep", "POST", ITEMS, b'{"product":"tee","attributes":{"a":{"b":{"c":{"d":{"e":1}}}}}}',
     JSON_TYPE, 422, "validation-error"),
    ("attributes too big", "POST", ITEMS, json.dumps({"product": "tee", "attributes": {
        "note": "x" * 3000}}).encode(), JSON_TYPE, 422, "validation-error"),
    ("attributes empty key", "POST", ITEMS, b'{"product":"tee","attributes":{"":1}}', JSON_TYPE, 422,
     "validation-error"),
    ("set: missing quantity", "PUT", f"{CART}/lines/{TEE}", b"{}", JSON_TYPE, 422, "validation-error"),
    ("set: negative", "PUT", f"{CART}/lines/{TEE}", b'{"quantity":-1}', JSON_TYPE, 422, "validation-error"),
    ("set: too large", "PUT", f"{CART}/lines/{TEE}", b'{"quantity":100001}', JSON_TYPE, 422, "validation-error"),
    ("set: float", "PUT", f"{CART}/lines/{TEE}", b'{"quantity":0.5}', JSON_TYPE, 422, "validation-error"),
    ("set: bool", "PUT", f"{CART}/lines/{TEE}", b'{"quantity":false}', JSON_TYPE, 422, "validation-error"),
    ("set: text", "PUT", f"{CART}/lines/{TEE}", b"quantity=1", "text/plain", 415, "unsupported-media-type"),
    ("clear: array", "POST", CART + "/clear", b"[]", JSON_TYPE, 400, "malformed-json"),
    ("clear: text", "POST", CART + "/clear", b"please", "text/plain", 415, "unsupported-media-type"),
    ("merge: into null", "POST", CART + "/merge", b'{"into":null}', JSON_TYPE, 422, "validation-error"),
    ("merge: into list", "POST", CART + "/merge", b'{"into":["a"]}', JSON_TYPE, 422, "validation-error"),
    ("merge: into slash", "POST", CART + "/merge", b'{"into":"a/b"}', JSON_TYPE, 422, "validation-error"),
    ("adjust: zero delta", "POST", STOCK + "/adjustments",
     b'{"id":"a","sku":"tee","delta":0,"reason":"r","actor":"a"}', JSON_TYPE, 422, "validation-error"),
    ("adjust: bool delta", "POST", STOCK + "/adjustments",
     b'{"id":"a","sku":"tee","delta":true,"reason":"r","actor":"a"}', JSON_TYPE, 422, "validation-error"),
    ("adjust: float delta", "POST", STOCK + "/adjustments",
     b'{"id":"a","sku":"tee","delta":1.0,"reason":"r","actor":"a"}', JSON_TYPE, 422, "validation-error"),
    ("adjust: string delta", "POST", STOCK + "/adjustments",
     b'{"id":"a","sku":"tee","delta":"1","reason":"r","actor":"a"}', JSON_TYPE, 422, "validation-error"),
    ("adjust: delta too large", "POST", STOCK + "/adjustments",
     b'{"id":"a","sku":"tee","delta":1000000001,"reason":"r","actor":"a"}', JSON_TYPE, 422, "validation-error"),
    ("adjust: delta too small", "POST", STOCK + "/adjustments",
     b'{"id":"a","sku":"tee","delta":-1000000001,"reason":"r","actor":"a"}', JSON_TYPE, 422, "validation-error"),
    ("adjust: missing id", "POST", STOCK + "/adjustments",
     b'{"sku":"tee","delta":1,"reason":"r","actor":"a"}', JSON_TYPE, 422, "validation-error"),
    ("adjust: null delta", "POST", STOCK + "/adjustments",
     b'{"id":"a","sku":"tee","delta":null,"reason":"r","actor":"a"}', JSON_TYPE, 422, "validation-error"),
    ("adjust: null at", "POST", STOCK + "/adjustments",
     b'{"id":"a","sku":"tee","delta":1,"reason":"r","actor":"a","at":null}', JSON_TYPE, 422, "validation-error"),
    ("adjust: null ref", "POST", STOCK + "/adjustments",
     b'{"id":"a","sku":"tee","delta":1,"reason":"r","actor":"a","ref":null}', JSON_TYPE, 422, "validation-error"),
    ("adjust: null actor", "POST", STOCK + "/adjustments",
     b'{"id":"a","sku":"tee","delta":1,"reason":"r","actor":null}', JSON_TYPE, 422, "validation-error"),
    ("adjust: negative at", "POST", STOCK + "/adjustments",
     b'{"id":"a","sku":"tee","delta":1,"reason":"r","actor":"a","at":-1}', JSON_TYPE, 422, "validation-error"),
    ("adjust: at past 2**53", "POST", STOCK + "/adjustments",
     b'{"id":"a","sku":"tee","delta":1,"reason":"r","actor":"a","at":9007199254740992}', JSON_TYPE, 422,
     "validation-error"),
    ("adjust: at as text", "POST", STOCK + "/adjustments",
     b'{"id":"a","sku":"tee","delta":1,"reason":"r","actor":"a","at":"2026-01-01T00:00:00Z"}', JSON_TYPE, 422,
     "validation-error"),
    ("adjust: empty ref", "POST", STOCK + "/adjustments",
     b'{"id":"a","sku":"tee","delta":1,"reason":"r","actor":"a","ref":""}', JSON_TYPE, 422, "validation-error"),
    ("adjust: unknown field", "POST", STOCK + "/adjustments",
     b'{"id":"a","sku":"tee","delta":1,"reason":"r","actor":"a","level":5}', JSON_TYPE, 422, "validation-error"),
    ("adjust: type field", "POST", STOCK + "/adjustments",
     b'{"type":"adjust","id":"a","sku":"tee","delta":1,"reason":"r","actor":"a"}', JSON_TYPE, 422,
     "validation-error"),
    ("batch: missing operations", "POST", STOCK + "/batch", b"{}", JSON_TYPE, 422, "validation-error"),
    ("batch: operations null", "POST", STOCK + "/batch", b'{"operations":null}', JSON_TYPE, 422,
     "validation-error"),
    ("batch: empty", "POST", STOCK + "/batch", b'{"operations":[]}', JSON_TYPE, 422, "validation-error"),
    ("batch: 501 operations", "POST", STOCK + "/batch", json.dumps({"operations": [
        {"type": "adjust", "id": f"b{n}", "sku": "tee", "delta": 1, "reason": "r", "actor": "a"}
        for n in range(501)]}).encode(), JSON_TYPE, 422, "validation-error"),
    ("batch: extra field", "POST", STOCK + "/batch", b'{"operations":[{"type":"adjust"}],"device":"x"}', JSON_TYPE,
     422, "validation-error"),
    ("resolve: note too long", "POST", STOCK + "/conflicts/c1/resolve",
     json.dumps({"strategy": "accept", "actor": "a", "note": "n" * 1025}).encode(), JSON_TYPE, 422,
     "validation-error"),
    ("resolve: level for accept", "POST", STOCK + "/conflicts/c1/resolve",
     b'{"strategy":"accept","actor":"a","level":1}', JSON_TYPE, 422, "validation-error"),
    ("resolve: null level", "POST", STOCK + "/conflicts/c1/resolve",
     b'{"strategy":"merge","actor":"a","level":null}', JSON_TYPE, 422, "validation-error"),
    ("resolve: null note", "POST", STOCK + "/conflicts/c1/resolve",
     b'{"strategy":"accept","actor":"a","note":null}', JSON_TYPE, 422, "validation-error"),
    ("resolve: conflict in body", "POST", STOCK + "/conflicts/c1/resolve",
     b'{"strategy":"accept","actor":"a","conflict":"c2"}', JSON_TYPE, 422, "validation-error"),
]


@pytest.mark.parametrize(("method", "path", "content", "content_type", "status", "slug"),
                         [case[1:] for case in BAD_BODIES], ids=[case[0] for case in BAD_BODIES])
def test_a_bad_body_is_refused_with_its_problem_and_stores_nothing(
    module_relay: InProcessRelay, module_api: httpx.Client,
    method: str, path: str, content: bytes, content_type: str, status: int, slug: str,
) -> None:
    before = store_state(module_relay)
    headers = {"Content-Type": content_type} if content_type else {}
    response = module_api.request(method, path, content=content, headers=headers)
    body = assert_problem(response, status, slug)
    if slug == "validation-error":
        assert body["errors"] and all(set(error) == {"field", "reason"} for error in body["errors"])
        assert body["detail"] == f"{body['errors'][0]['field']}: {body['errors'][0]['reason']}"
    assert store_state(module_relay) == before


def test_a_null_quantity_is_a_422_not_a_default_and_leaves_every_room_as_it_was(
    module_relay: InProcessRelay, module_api: httpx.Client,
) -> None:
    """Left out, ``quantity`` defaults to 1; sent as ``null`` it is invalid like any other bad value."""
    cart, bystander, location = new_id("null"), new_id("bystander"), new_id("null-loc")
    assert module_api.post(f"/v1/tenants/acme/carts/{cart}/items", json={"product": "tee", "quantity": 2}) \
        .status_code == 200
    assert module_api.post(f"/v1/tenants/acme/carts/{bystander}/items", json={"product": "mug"}).status_code == 200
    before = store_state(module_relay)
    reads = {path: module_api.get(path) for path in (f"/v1/tenants/acme/carts/{cart}",
                                                      f"/v1/tenants/acme/carts/{bystander}")}
    optional, required = "must not be null (leave it out for its default)", "must be an integer, not null"
    refused = [
        ("POST", f"/v1/tenants/acme/carts/{cart}/items", {"product": "tee", "quantity": None}, "quantity", optional),
        ("POST", f"/v1/tenants/acme/carts/{bystander}/items", {"product": "mug", "quantity": None}, "quantity",
         optional),
        ("PUT", f"/v1/tenants/acme/carts/{cart}/lines/{TEE}", {"quantity": None}, "quantity", required),
        ("POST", f"/v1/tenants/acme/stock/{location}/adjustments",
         {"id": "n-1", "sku": "tee", "delta": None, "reason": "r", "actor": "a"}, "delta", required),
    ]
    for method, path, body, field, reason in refused:
        for key in ({}, {"Idempotency-Key": new_id("null-key")}):
            problem = assert_problem(module_api.request(method, path, json=body, headers=key), 422,
                                     "validation-error")
            assert problem["errors"] == [{"field": field, "reason": reason}]
    # In a batch, a null delta is that operation's rejection; the valid one beside it applies.
    batch = module_api.post(f"/v1/tenants/acme/stock/{location}/batch", json={"operations": [
        {"type": "adjust", "id": "n-2", "sku": "tee", "delta": None, "reason": "r", "actor": "a"},
        {"type": "adjust", "id": "n-3", "sku": "tee", "delta": 4, "reason": "r", "actor": "a"},
    ]})
    assert batch.status_code == 200, batch.text
    assert [r["status"] for r in batch.json()["results"]] == ["rejected", "applied"]
    assert batch.json()["results"][0]["problem"]["errors"][0]["field"] == "operations[0].delta"
    assert batch.json()["levels"] == {"tee": 4}
    after = store_state(module_relay)
    assert [row[1] for row in after["changes"][len(before["changes"]):]] == [f"acme/stock/{location}"]
    assert {name: rows for name, rows in after.items() if name != "changes" and name != "updates"} == \
        {name: rows for name, rows in before.items() if name != "changes" and name != "updates"}
    for path, read in reads.items():
        again = module_api.get(path)
        assert (again.json(), again.headers["etag"]) == (read.json(), read.headers["etag"])
    assert module_api.get(f"/v1/tenants/acme/carts/{cart}").json()["lines"][0]["quantity"] == 2
    # Leaving the field out still adds the documented default of 1.
    added = module_api.post(f"/v1/tenants/acme/carts/{cart}/items", json={"product": "tee"})
    assert added.json()["lines"][0]["quantity"] == 3


def test_a_request_without_content_type_or_with_chunks_is_read_as_strictly(module_relay: InProcessRelay,
                                                                          module_api: httpx.Client) -> None:
    before = store_state(module_relay)

    def chunks() -> Iterator[bytes]:
        yield b'{"product":'
        yield b'"tee","quantity":NaN}'

    response = module_api.post(ITEMS, content=chunks(), headers={"Content-Type": "application/json"})
    assert_problem(response, 400, "malformed-json")
    assert store_state(module_relay) == before


# -- paths -------------------------------------------------------------------------------------


PATHS: list[tuple[str, str, str, int, str]] = [
    # (name, method, raw path, status, problem)
    ("encoded slash in cart id", "GET", "/v1/tenants/acme/carts/a%2Fb", 404, "not-found"),
    ("encoded slash reaching a route", "DELETE", f"/v1/tenants/acme/carts/x%2Flines%2F{TEE}", 400,
     "invalid-document-name"),
    # Routing sees the decoded path: an encoded slash that makes it match no route is a 404...
    ("encoded slash in location", "GET", "/v1/tenants/acme/stock/a%2f..%2fb/levels", 404, "not-found"),
    ("encoded slash in tenant", "GET", "/v1/tenants/acme%2Fcarts/carts/c", 404, "not-found"),
    # ...and one that makes it match a route is refused before the token or the document are looked at.
    ("encoded slash into a route", "GET", "/v1/tenants/acme/stock/s%2Flevels/levels", 400,
     "invalid-document-name"),
    ("encoded slash in the tenant into a route", "GET", "/v1/tenants/acme%2Fstock/s/levels", 400,
     "invalid-document-name"),
    ("encoded dot dot", "GET", "/v1/tenants/acme/carts/%2E%2E", 400, "invalid-document-name"),
    ("encoded dot dot lower", "GET", "/v1/tenants/acme/stock/%2e%2e/levels", 400, "invalid-document-name"),
    ("double encoding", "GET", "/v1/tenants/acme/carts/a%252Fb", 400, "invalid-document-name"),
    ("encoded backslash", "GET", "/v1/tenants/acme/carts/a%5Cb", 400, "invalid-document-name"),
    ("encoded NUL", "GET", "/v1/tenants/acme/carts/a%00b", 400, "invalid-document-name"),
    ("encoded non-ASCII", "GET", "/v1/tenants/acme/carts/caf%C3%A9", 400, "invalid-document-name"),
    ("percent-encoded invalid UTF-8 sku", "GET", "/v1/tenants/acme/stock/s/levels/%FF", 400,
     "invalid-document-name"),
    ("percent-encoded surrogate sku", "GET", "/v1/tenants/acme/stock/s/levels/%ED%A0%80", 400,
     "invalid-document-name"),
    ("percent-encoded invalid UTF-8 conflict", "POST", "/v1/tenants/acme/stock/s/conflicts/%C3/resolve", 400,
     "invalid-document-name"),
    ("encoded space", "GET", "/v1/tenants/acme/carts/a%20b", 400, "invalid-document-name"),
    ("leading dot", "GET", "/v1/tenants/acme/carts/.hidden", 400, "invalid-document-name"),
    ("id too long", "GET", "/v1/tenants/acme/carts/" + "c" * 129, 400, "invalid-document-name"),
    ("tenant too long", "GET", "/v1/tenants/" + "a" * 129 + "/carts/c", 400, "invalid-document-name"),
    ("bad tenant", "GET", "/v1/tenants/ac%20me/carts/c", 400, "invalid-document-name"),
    ("write to a bad id", "POST", "/v1/tenants/acme/carts/caf%C3%A9/items", 400, "invalid-document-name"),
    ("write with a dot id", "POST", "/v1/tenants/acme/stock/%2E/adjustments", 400, "invalid-document-name"),
    ("no such route", "GET", "/v1/tenants/acme/wishlists/w", 404, "not-found"),
    ("no such method", "PATCH", "/v1/tenants/acme/carts/c", 405, "method-not-allowed"),
    ("no id", "GET", "/v1/tenants/acme/carts/", 404, "not-found"),
    ("sku with encoded slash", "GET", "/v1/tenants/acme/stock/s/levels/a%2Fb", 404, "not-found"),
    ("conflict id too long", "POST", "/v1/tenants/acme/stock/s/conflicts/" + "x" * 129 + "/resolve", 400,
     "invalid-parameter"),
]


@pytest.mark.parametrize(("method", "raw_path", "status", "slug"), [case[1:] for case in PATHS],
                         ids=[case[0] for case in PATHS])
def test_a_path_trick_is_refused_with_its_problem_and_stores_nothing(
    module_relay: InProcessRelay, module_api: httpx.Client,
    method: str, raw_path: str, status: int, slug: str,
) -> None:
    before = store_state(module_relay)
    url = module_api.base_url.copy_with(raw_path=raw_path.encode("ascii"))
    body = {"product": "tee"} if "/items" in raw_path else (ADJUSTMENT if "adjust" in raw_path else None)
    if "/resolve" in raw_path:
        body = {"strategy": "accept", "actor": "a"}
    response = module_api.request(method, url, json=body)
    assert response.request.url.raw_path == raw_path.encode("ascii")
    assert_problem(response, status, slug)
    assert store_state(module_relay) == before


# -- headers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [b"", b"k" * 256, "clé".encode(), "キー".encode(), b"a\tb"],
                         ids=["empty", "256 chars", "latin-1", "utf-8", "tab"])
def test_an_invalid_idempotency_key_is_a_400_and_stores_nothing(module_relay: InProcessRelay,
                                                                module_api: httpx.Client, key: bytes) -> None:
    before = store_state(module_relay)
    for method, path, body in [("POST", ITEMS, {"product": "tee"}), ("DELETE", f"{CART}/lines/{TEE}", None),
                               ("POST", STOCK + "/adjustments", ADJUSTMENT)]:
        response = module_api.request(method, path, json=body, headers={"Idempotency-Key": key})
        problem = assert_problem(response, 400, "invalid-header")
        assert problem["detail"] == "Idempotency-Key must be 1 to 255 printable ASCII characters"
    assert store_state(module_relay) == before
    # 255 printable characters are fine.
    response = module_api.post(ITEMS, json={"product": "mug"}, headers={"Idempotency-Key": "k" * 255})
    assert response.status_code == 200


def test_the_server_is_up_and_serves_normally_after_all_of_that(module_relay: InProcessRelay,
                                                                module_api: httpx.Client) -> None:
    assert module_relay.running
    assert module_api.get("/v1/health").json() == {"status": "ok"}
    cart_id = new_id("after")
    response = module_api.post(f"/v1/tenants/acme/carts/{cart_id}/items", json={"product": "cap", "quantity": 2})
    assert response.status_code == 200
    assert response.json()["total"] == 1998
    assert "Traceback" not in module_relay.log()


# -- the body size limit -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessRelay]:
    data_dir: Path = tmp_path_factory.mktemp("small") / "relay"
    load_catalog(data_dir, "acme", CATALOG)
    relay = InProcessRelay(data_dir, rest_max_body_bytes=1024).start()
    try:
        yield relay
    finally:
        relay.stop()


def test_a_body_over_the_limit_is_a_413_declared_or_streamed(small_relay: InProcessRelay) -> None:
    with client(small_relay, small_relay.token("acme")) as http:
        before = store_state(small_relay)
        padding = {"product": "tee", "attributes": {"note": "x" * 1100}}
        body = assert_problem(http.post(ITEMS, json=padding), 413, "payload-too-large")
        assert body["limit"] == 1024 and body["detail"] == "the limit is 1024 bytes"

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
            yield b'{"product":"tee","attributes":{"note":"'
            for _ in range(64):
                yield b"x" * 64
            yield b'"}}'

        assert_problem(http.post(ITEMS, content=chunks(), headers={"Content-Type": "application/json"}),
                       413, "payload-too-large")
        big_batch = {"operations": [{"type": "adjust", "id": f"b{n}", "sku": "tee", "delta": 1, "reason": "r",
                                     "actor": "a"} for n in range(30)]}
        assert_problem(http.post(STOCK + "/batch", json=big_batch), 413, "payload-too-large")
        assert_problem(http.post(STOCK + "/batch", content=b"x" * 5000, headers={"Content-Type": "text/plain"}),
                       415, "unsupported-media-type")
        assert store_state(small_relay) == before
        # At the limit exactly, a body is read.
        exact = json.dumps({"product": "tee", "attributes": {"note": ""}}, separators=(",", ":"))
        exact = exact.replace('""', '"' + "x" * (1024 - len(exact)) + '"')
        assert len(exact.encode()) == 1024
        response = http.post(ITEMS, content=exact.encode(), headers={"Content-Type": "application/json"})
        assert response.status_code == 200, response.text
        assert response.json()["total_quantity"] == 1
