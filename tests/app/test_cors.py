"""CORS from ``--cors-origin``: real preflights and requests over a loopback socket (uvicorn),
the change feed's stream read cross-origin, and the WebSocket origin rule."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from syncline.app.cors import ALLOW_HEADERS, EXPOSE_HEADERS
from tests.rest.inprocess import InProcessRelay

from .conftest import ELSEWHERE, SHOP

CART = "/v1/tenants/acme/carts/c-cors"


def _listed(value: str | None) -> set[str]:
    return {item.strip().lower() for item in (value or "").split(",") if item.strip()}


def _cors_headers(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name.lower().startswith("access-control-")}


@pytest.fixture
def http(cors_relay: InProcessRelay) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cors_relay.http_url, timeout=10.0) as client:
        yield client


@pytest.mark.parametrize(("method", "path"), [
    ("POST", CART + "/items"),
    ("PUT", CART + "/lines/" + "0" * 32),
    ("DELETE", CART + "/lines/" + "0" * 32),
    ("GET", CART),
    ("GET", "/v1/tenants/acme/events"),
])
def test_a_preflight_from_an_allowed_origin_allows_the_method_and_every_header_rest_takes(
    http: httpx.Client, method: str, path: str,
) -> None:
    requested = ", ".join(header.lower() for header in ALLOW_HEADERS)
    response = http.options(path, headers={"Origin": SHOP, "Access-Control-Request-Method": method,
                                           "Access-Control-Request-Headers": requested})
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == SHOP
    assert method.lower() in _listed(response.headers["access-control-allow-methods"])
    assert {h.lower() for h in ALLOW_HEADERS} <= _listed(response.headers["access-control-allow-headers"])
    assert int(response.headers["access-control-max-age"]) > 0
    assert "access-control-allow-credentials" not in response.headers
    assert "origin" in _listed(response.headers["vary"])


def test_a_preflight_from_another_origin_gets_no_cors_header(http: httpx.Client) -> None:
    response = http.options(CART + "/items", headers={
        "Origin": ELSEWHERE, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert response.status_code == 400
    assert _cors_headers(response) == {}
    assert "origin" in _listed(response.headers["vary"])


def test_a_preflight_for_a_header_rest_does_not_take_is_refused(http: httpx.Client) -> None:
    response = http.options(CART + "/items", headers={
        "Origin": SHOP, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-forwarded-user"})
    assert response.status_code == 400


def test_a_cross_origin_write_exposes_etag_and_retry_headers_and_its_etag_works_for_if_match(
    http: httpx.Client, cors_relay: InProcessRelay,
) -> None:
    token = cors_relay.token("acme")
    headers = {"Origin": SHOP, "Authorization": f"Bearer {token}", "Idempotency-Key": "cors-1"}
    added = http.post(CART + "/items", json={"product": "tee", "quantity": 2}, headers=headers)
    assert added.status_code == 200, added.text
    assert added.headers["access-control-allow-origin"] == SHOP
    exposed = _listed(added.headers["access-control-expose-headers"])
    assert {h.lower() for h in EXPOSE_HEADERS} <= exposed and "etag" in exposed
    line = added.json()["lines"][0]["id"]
    stale = http.put(f"{CART}/lines/{line}", json={"quantity": 5},
                     headers={**headers, "Idempotency-Key": "cors-2", "If-Match": '"stale"'})
    assert stale.status_code == 412
    assert stale.headers["access-control-allow-origin"] == SHOP  # errors are readable too
    fresh = http.put(f"{CART}/lines/{line}", json={"quantity": 5},
                     headers={**headers, "Idempotency-Key": "cors-3", "If-Match": added.headers["etag"]})
    assert fresh.status_code == 200 and fresh.json()["lines"][0]["quantity"] == 5


@pytest.mark.parametrize("path", ["/v1/openapi.json", "/v1/health", "/healthz", "/readyz", "/metrics",
                                  CART, "/v1/docs/"])
def test_every_http_route_answers_an_allowed_origin_and_only_it(http: httpx.Client, path: str) -> None:
    allowed = http.get(path, headers={"Origin": SHOP})
    assert allowed.headers["access-control-allow-origin"] == SHOP, path
    refused = http.get(path, headers={"Origin": ELSEWHERE})
    assert refused.status_code == allowed.status_code
    assert _cors_headers(refused) == {}, path
    assert "origin" in _listed(refused.headers["vary"])


def test_the_change_feed_streams_to_an_allowed_origin_with_a_token_in_the_query(
    http: httpx.Client, cors_relay: InProcessRelay,
) -> None:
    # What a browser's EventSource sends: Origin, Accept, the token in the address.
    token = cors_relay.token("acme")
    with http.stream("GET", "/v1/tenants/acme/events", params={"token": token, "doc": "cart/c-feed"},
                     headers={"Origin": SHOP, "Accept": "text/event-stream"}) as stream:
        assert stream.status_code == 200
        assert stream.headers["access-control-allow-origin"] == SHOP
        assert stream.headers["content-type"].startswith("text/event-stream")
        with httpx.Client(base_url=cors_relay.http_url, timeout=10.0) as writer:
            written = writer.post("/v1/tenants/acme/carts/c-feed/items", json={"product": "mug"},
                                  headers={"Authorization": f"Bearer {token}"})
            assert written.status_code == 200, written.text
        event: dict[str, str] = {}
        for line in stream.iter_lines():
            if line == "" and "data" in event:
                if event.get("event") == "cart.changed":
                    break
                event = {}  # the stream's connected event, a heartbeat
            if ":" in line and not line.startswith(":"):
                name, _, value = line.partition(":")
                event[name] = value.strip()
        assert event["event"] == "cart.changed"
        assert json.loads(event["data"])["doc"] == "acme/cart/c-feed"


def test_without_cors_origins_no_route_sends_cors_headers_and_a_preflight_is_not_allowed(
    plain_relay: InProcessRelay,
) -> None:
    with httpx.Client(base_url=plain_relay.http_url, timeout=10.0) as http:
        preflight = http.options(CART + "/items", headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 405
        assert _cors_headers(preflight) == {}
        for path in ("/v1/openapi.json", "/healthz", CART):
            assert _cors_headers(http.get(path, headers={"Origin": SHOP})) == {}


def test_any_origin_is_allowed_by_a_star(tmp_path_factory: pytest.TempPathFactory) -> None:
    relay = InProcessRelay(tmp_path_factory.mktemp("star"), cors_origin=("*",)).start()
    try:
        with httpx.Client(base_url=relay.http_url, timeout=10.0) as http:
            preflight = http.options(CART, headers={"Origin": ELSEWHERE, "Access-Control-Request-Method": "GET",
                                                    "Access-Control-Request-Headers": "authorization"})
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == "*"
            assert http.get("/healthz", headers={"Origin": ELSEWHERE}).headers["access-control-allow-origin"] == "*"
    finally:
        relay.stop()


# -- WebSockets --------------------------------------------------------------------------


def _first_frame_or_close(url: str, origin: str | None) -> bytes | int:
    """The relay's first frame to a peer (its sync step 1: admitted), or the close code (refused)."""
    headers = {} if origin is None else {"Origin": origin}
    with connect(url, additional_headers=headers, open_timeout=10, close_timeout=5) as ws:
        try:
            frame = ws.recv(timeout=10)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code
        assert isinstance(frame, bytes)
        return frame


def test_with_cors_origins_a_websocket_from_another_origin_is_closed_with_4403(cors_relay: InProcessRelay) -> None:
    url = cors_relay.url_for("acme/cart/ws-origin")
    assert _first_frame_or_close(url, ELSEWHERE) == 4403
    metrics = httpx.get(cors_relay.http_url + "/metrics", timeout=10).text
    assert 'syncline_rejected_total{reason="forbidden_origin"}' in metrics


@pytest.mark.parametrize("origin", [SHOP, "same", None])
def test_with_cors_origins_a_listed_origin_the_relays_own_and_a_non_browser_peer_are_served(
    cors_relay: InProcessRelay, origin: str | None,
) -> None:
    if origin == "same":
        origin = cors_relay.http_url  # a page the relay served, e.g. /demo/
    frame = _first_frame_or_close(cors_relay.url_for("acme/cart/ws-origin"), origin)
    assert isinstance(frame, bytes) and frame[:2] == b"\x00\x00"  # sync step 1


def test_without_cors_origins_a_websocket_from_any_origin_is_served(plain_relay: InProcessRelay) -> None:
    frame = _first_frame_or_close(plain_relay.url_for("acme/cart/ws-any"), ELSEWHERE)
    assert isinstance(frame, bytes) and frame[:2] == b"\x00\x00"
