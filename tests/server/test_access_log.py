"""Request ids and the access log of a real ``syncline serve`` process, read from its stderr.

One relay per log form (plain text, JSON, ``--no-access-log``), shared by the module's
tests; each test finds its own lines by the request ids it sends.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from harness.catalog import CATALOG, load_catalog
from harness.relay_process import SECRET, RelayProcess
from syncline.engine.tokens import issue_token

TENANT = "/v1/tenants/acme"
CART_ROUTE = "/v1/tenants/{tenant}/carts/{cart_id}"


def _relay(path: Path, *flags: str) -> Iterator[RelayProcess]:
    load_catalog(path, "acme", CATALOG)
    relay = RelayProcess(path, flags=list(flags)).start()
    try:
        yield relay
    finally:
        relay.stop()


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    yield from _relay(tmp_path_factory.mktemp("plain") / "relay")


@pytest.fixture(scope="module")
def json_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    yield from _relay(tmp_path_factory.mktemp("json") / "relay", "--log-json")


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    yield from _relay(tmp_path_factory.mktemp("quiet") / "relay", "--no-access-log")


def _lines(relay: RelayProcess, needle: str, count: int = 1, timeout: float = 5.0) -> list[str]:
    """The relay's log lines holding ``needle``, once there are at least ``count`` (stderr is unbuffered,
    but the line of a request is written after its answer)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in relay.log().splitlines() if needle in line]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def _api(relay: RelayProcess, *, authorized: bool = True) -> httpx.Client:
    headers = {"Authorization": f"Bearer {relay.token('acme')}"} if authorized else {}
    return httpx.Client(base_url=relay.http_url, headers=headers)


def _new_id() -> str:
    return "t-" + uuid.uuid4().hex[:12]


def _close_code(
    url: str, headers: dict[str, str] | None = None, send: bytes | None = None
) -> tuple[int, str | None]:
    """Open a WebSocket on ``url`` (and ``send`` a frame) until the relay closes it: its close code and the
    request id sent back."""

    async def run() -> tuple[int, str | None]:
        async with websockets.connect(url, additional_headers=headers or {}) as ws:
            assert ws.response is not None
            request_id = ws.response.headers.get("x-request-id")
            if send is not None:
                await ws.send(send)
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None
                return closed.rcvd.code, request_id

    return asyncio.run(run())


def test_a_request_id_sent_is_echoed_and_on_the_access_line_and_the_merge_line(plain: RelayProcess) -> None:
    with _api(plain) as api:
        guest, user = _new_id(), _new_id()
        added = api.post(f"{TENANT}/carts/{guest}/items", json={"product": "tee", "quantity": 2})
        assert added.status_code == 200
        merged = api.post(f"{TENANT}/carts/{guest}/merge", json={"into": user},
                          headers={"X-Request-ID": "merge-7f3a"})
        assert merged.status_code == 200, merged.text
        assert merged.headers["x-request-id"] == "merge-7f3a"
        lines = _lines(plain, "request_id=merge-7f3a", count=2)
        assert len(lines) == 2, plain.log()
        merge_line, access_line = lines
        assert (f"INFO syncline.rest: cart merged request_id=merge-7f3a tenant=acme cart={guest} into={user} "
                "lines=1 replayed=false") in merge_line
        assert re.search(rf"INFO syncline\.access: POST {re.escape(CART_ROUTE)}/merge 200 [0-9.]+ms "
                         r"request_id=merge-7f3a tenant=acme$", access_line), access_line


def test_a_checkout_logs_one_line_with_ids_only(plain: RelayProcess) -> None:
    with _api(plain) as api:
        cart = _new_id()
        api.post(f"{TENANT}/carts/{cart}/items", json={"product": "mug", "quantity": 3})
        placed = api.post(f"{TENANT}/carts/{cart}/checkout", json={"location": "north", "actor": "till-7"})
        assert placed.status_code == 201, placed.text
        (line,) = _lines(plain, f"cart checked out request_id={placed.headers['x-request-id']}")
        assert line.endswith(f"tenant=acme cart={cart} order={cart} location=north lines=1 replayed=false")
        assert "till-7" not in line  # the actor (a person or a till) is not logged


def test_a_request_without_an_id_or_with_a_bad_one_gets_a_generated_one(plain: RelayProcess) -> None:
    seen = set()
    for headers in ({}, {}, {"X-Request-ID": "has space"}, {"X-Request-ID": "x" * 129}):
        response = httpx.get(f"{plain.http_url}/v1/health", headers=headers)
        request_id = response.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
        (line,) = _lines(plain, f"request_id={request_id}")
        assert "INFO syncline.access: GET /v1/health 200 " in line
        seen.add(request_id)
    assert len(seen) == 4
    longest = "y" * 128
    echoed = httpx.get(f"{plain.http_url}/v1/health", headers={"X-Request-ID": longest})
    assert echoed.headers["x-request-id"] == longest


def test_a_rest_401_is_one_line_naming_its_cause_without_the_token(plain: RelayProcess) -> None:
    expired = issue_token(SECRET, "acme", ["acme/*"], ttl_seconds=10, now=time.time() - 100)
    cases = ((None, "missing_token"), ("not-a-token", "invalid_token"), (expired, "token_expired"))
    for token, cause in cases:
        request_id = _new_id()
        headers = {"X-Request-ID": request_id} | ({"Authorization": f"Bearer {token}"} if token else {})
        cart = _new_id()
        response = httpx.get(f"{plain.http_url}{TENANT}/carts/{cart}", headers=headers)
        assert response.status_code == 401
        lines = _lines(plain, request_id)
        assert len(lines) == 1, lines
        assert f"GET {CART_ROUTE} 401 " in lines[0]
        assert f"tenant=acme cause={cause} detail=" in lines[0]
        assert cart not in lines[0]
        if token:
            assert token not in plain.log()


def test_a_token_in_the_query_string_never_reaches_the_log(plain: RelayProcess) -> None:
    token = plain.token("acme")
    cart = _new_id()
    response = httpx.get(f"{plain.http_url}{TENANT}/carts/{cart}?token={token}",
                         headers={"X-Request-ID": "query-1"})
    assert response.status_code == 200
    (line,) = _lines(plain, "query-1")
    assert f"GET {CART_ROUTE} 200 " in line
    assert token not in plain.log() and cart not in line


def test_a_refused_websocket_is_one_line_with_its_close_code_and_cause(plain: RelayProcess) -> None:
    doc = f"acme/cart/{_new_id()}"
    wrong = plain.token("acme", "acme/order/*")
    code, request_id = _close_code(plain.url(doc, wrong), {"X-Request-ID": "ws-refused-1"})
    assert (code, request_id) == (4403, "ws-refused-1")
    lines = _lines(plain, "ws-refused-1")
    assert len(lines) == 1, plain.log()
    assert "INFO syncline.access: WS /v1/sync/{tenant}/{kind}/{doc_id} 4403 " in lines[0]
    assert lines[0].endswith("request_id=ws-refused-1 tenant=acme cause=forbidden")
    assert wrong not in plain.log() and doc.split("/")[2] not in lines[0]
    assert '"WebSocket ' not in plain.log()  # uvicorn's own handshake lines are off


def test_a_connection_closed_for_a_bad_frame_logs_its_cause_and_every_line_has_its_request_id(
    plain: RelayProcess,
) -> None:
    doc = f"acme/cart/{_new_id()}"
    code, request_id = _close_code(plain.url_for(doc), {"X-Request-ID": "ws-bad-frame"},
                                   send=b"\x00\xff\xff\xff")
    assert (code, request_id) == (4400, "ws-bad-frame")
    malformed, access = _lines(plain, "request_id=ws-bad-frame", count=2)
    assert "INFO syncline.connection: closing peer after a malformed frame request_id=ws-bad-frame " \
        in malformed
    assert f"doc={doc}" in malformed
    assert "WS /v1/sync/{tenant}/{kind}/{doc_id} 4400 " in access
    assert access.endswith("request_id=ws-bad-frame tenant=acme cause=invalid_message")


@pytest.mark.parametrize("code", [1000, 1001])
def test_a_peer_that_closes_is_logged_with_its_own_close_code_and_no_cause(plain: RelayProcess, code: int) -> None:
    request_id = f"ws-peer-close-{code}"

    async def run() -> None:
        async with websockets.connect(plain.url_for(f"acme/cart/{_new_id()}"),
                                      additional_headers={"X-Request-ID": request_id}) as ws:
            await asyncio.wait_for(ws.recv(), 5)  # the relay's sync step 1: the peer is in its room
            await ws.close(code=code)

    asyncio.run(run())
    (line,) = _lines(plain, request_id)
    assert f"INFO syncline.access: WS /v1/sync/{{tenant}}/{{kind}}/{{doc_id}} {code} " in line, plain.log()
    assert "cause=" not in line


def test_probes_are_not_logged_when_they_succeed(plain: RelayProcess) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        request_id = httpx.get(plain.http_url + path).headers["x-request-id"]
        httpx.get(f"{plain.http_url}/v1/health", headers={"X-Request-ID": request_id + "-after"})
        assert _lines(plain, request_id + "-after")
        assert _lines(plain, f"request_id={request_id} ", timeout=0) == []


def test_json_lines_carry_every_field_and_no_colour_codes(json_relay: RelayProcess) -> None:
    with _api(json_relay, authorized=False) as api:
        response = api.get(f"{TENANT}/carts/{_new_id()}", headers={"X-Request-ID": "json-401"})
        assert response.status_code == 401
        _lines(json_relay, '"json-401"')
        text = json_relay.log()
        assert "\x1b[" not in text and "\\u001b[" not in text
        records = [json.loads(line) for line in text.splitlines()]
        assert any(record["logger"].startswith("uvicorn") for record in records)  # uvicorn's in JSON too
        assert all("color_message" not in record for record in records)
        (access,) = [record for record in records if record.get("request_id") == "json-401"]
        keys = ("level", "logger", "method", "route", "status", "tenant", "cause")
        assert {key: access[key] for key in keys} == {
            "level": "info", "logger": "syncline.access", "method": "GET", "route": CART_ROUTE, "status": 401,
            "tenant": "acme", "cause": "missing_token"}
        assert isinstance(access["ms"], float)


def test_without_the_access_log_only_refusals_are_logged(quiet: RelayProcess) -> None:
    with _api(quiet) as api:
        assert api.get(f"{TENANT}/carts/{_new_id()}", headers={"X-Request-ID": "quiet-ok"}).status_code == 200
        refused = api.post(f"{TENANT}/carts/{_new_id()}/items", json={"product": "tee", "quantity": 0},
                           headers={"X-Request-ID": "quiet-422"})
        assert refused.status_code == 422
        code, _ = _close_code(quiet.url(f"acme/cart/{_new_id()}"), {"X-Request-ID": "quiet-ws"})
        assert code == 4401
        (line,) = _lines(quiet, "quiet-422")
        assert f"POST {CART_ROUTE}/items 422 " in line and "cause=validation-error" in line
        (ws_line,) = _lines(quiet, "quiet-ws")
        assert "cause=missing_token" in ws_line
        assert _lines(quiet, "quiet-ok", timeout=0) == []
