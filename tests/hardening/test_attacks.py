"""Tenancy and auth attacks: every way to name another tenant's document, every forged token.

Each attack targets tenant ``acme``'s documents (which hold data) as tenant ``globex``
or with a forged, expired or foreign token, over the WebSocket endpoint and over
REST. Each must be refused with its documented code (docs/protocol.md, docs/rest.md)
and leave no trace: the store's log, snapshots, change feed and kept responses are
unchanged and no room was opened. Cases already pinned identically in
tests/server/test_bad_input.py and tests/rest/test_rest_auth_and_input.py are not
repeated here; these are the cross-tenant variants and the tricks those do not try.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import jwt
import pytest

from syncline.engine import closecodes, protocol
from harness.catalog import CATALOG, load_catalog
from tests.rest.helpers import assert_problem, store_state
from harness.hostile import closed_with, open_rooms, rejected
from harness.relay_process import SECRET, RelayProcess
from harness.ypeer import ypeer

from harness.probes import change_rows

pytestmark = pytest.mark.anyio

VICTIM = "acme/cart/target"
VICTIM_STOCK = "acme/stock/target"
OTHER_SECRET = "another-secret-" + "y" * 40
# What an attacker might hold instead of the relay's secret: a public key, as in the
# RS256-to-HS256 key confusion attack against verifiers that take the key from the token's header.
PUBLIC_KEY_PEM = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
    "-----END PUBLIC KEY-----\n"
)


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    data_dir = tmp_path_factory.mktemp("attacks") / "relay"
    for tenant in ("acme", "globex"):
        load_catalog(data_dir, tenant, CATALOG)
    process = RelayProcess(data_dir, ["--room-idle-seconds", "600"]).start()
    try:
        # The victim's documents hold data, so a leak or an overwrite would show.
        with httpx.Client(base_url=process.http_url, timeout=10,
                          headers={"Authorization": f"Bearer {process.token('acme')}"}) as http:
            assert http.post("/v1/tenants/acme/carts/target/items", json={"product": "tee"}).status_code == 200
            adjustment = {"id": "a-1", "sku": "tee", "delta": 5, "reason": "count", "actor": "ann"}
            assert http.post("/v1/tenants/acme/stock/target/adjustments", json=adjustment).status_code == 201
        yield process
    finally:
        process.stop()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**extra: Any) -> dict[str, Any]:
    return {"iss": "syncline", "tenant": "acme", "docs": ["acme/*"], "ro": False, "iat": int(time.time()), **extra}


def _hmac_token(header: dict[str, Any], claims: dict[str, Any], key: str | bytes) -> str:
    """A token signed with HMAC-SHA256 over ``key``, whatever its header claims."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    key_bytes = key.encode() if isinstance(key, str) else key
    return f"{signing_input}.{_b64(hmac.new(key_bytes, signing_input.encode(), hashlib.sha256).digest())}"


def _strip_signature(token: str) -> str:
    return token.rsplit(".", 1)[0] + "."


def _swap_payload(token: str, **changes: Any) -> str:
    """Keep a real token's header and signature, change its claims."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def forged_tokens(relay: RelayProcess) -> dict[str, tuple[str, int, int]]:
    """name -> (token, WebSocket close code, REST status), each aimed at acme's documents."""
    globex = relay.token("globex")
    expired_globex = jwt.encode(_claims(tenant="globex", docs=["globex/*"], exp=int(time.time()) - 10), SECRET,
                                algorithm="HS256")
    return {
        "globex's token": (globex, closecodes.FORBIDDEN, 403),
        "globex's read-only token": (relay.token("globex", read_only=True), closecodes.FORBIDDEN, 403),
        "globex's token re-labelled acme": (_swap_payload(globex, tenant="acme", docs=["acme/*"]),
                                            closecodes.UNAUTHORIZED, 401),
        "globex's token without its signature": (_strip_signature(globex), closecodes.UNAUTHORIZED, 401),
        "globex's expired token": (expired_globex, closecodes.TOKEN_EXPIRED, 401),
        "an expired acme token": (jwt.encode(_claims(exp=int(time.time()) - 1), SECRET, algorithm="HS256"),
                                  closecodes.TOKEN_EXPIRED, 401),
        "acme claims signed with another secret": (jwt.encode(_claims(), OTHER_SECRET, algorithm="HS256"),
                                                   closecodes.UNAUTHORIZED, 401),
        "alg none with acme claims": (jwt.encode(_claims(), None, algorithm="none"), closecodes.UNAUTHORIZED, 401),
        "alg None with a signature": (_hmac_token({"alg": "None"}, _claims(), SECRET), closecodes.UNAUTHORIZED, 401),
        "HS256 signed with a public key (key confusion)": (
            _hmac_token({"alg": "HS256", "typ": "JWT"}, _claims(), PUBLIC_KEY_PEM), closecodes.UNAUTHORIZED, 401),
        "RS256 header, HMAC over the public key": (
            _hmac_token({"alg": "RS256", "typ": "JWT"}, _claims(), PUBLIC_KEY_PEM), closecodes.UNAUTHORIZED, 401),
        "RS256 header, HMAC over the real secret": (
            _hmac_token({"alg": "RS256", "typ": "JWT"}, _claims(), SECRET), closecodes.UNAUTHORIZED, 401),
        "a kid pointing at a file": (
            _hmac_token({"alg": "HS256", "kid": "../../../../dev/null"}, _claims(), b""), closecodes.UNAUTHORIZED,
            401),
        "a jku pointing elsewhere": (
            _hmac_token({"alg": "HS256", "jku": "http://127.0.0.1:1/keys"}, _claims(), OTHER_SECRET),
            closecodes.UNAUTHORIZED, 401),
        "an empty HMAC key": (_hmac_token({"alg": "HS256"}, _claims(), b""), closecodes.UNAUTHORIZED, 401),
        "a token for ACME (another tenant, by case)": (
            jwt.encode(_claims(tenant="ACME", docs=["ACME/*"]), SECRET, algorithm="HS256"), closecodes.FORBIDDEN,
            403),
        "a Cyrillic look-alike tenant": (
            jwt.encode(_claims(tenant="аcme", docs=["аcme/*"]), SECRET, algorithm="HS256"),
            closecodes.UNAUTHORIZED, 401),
        "a globex token whose patterns name acme": (
            jwt.encode(_claims(tenant="globex", docs=["globex/*", "acme/*"]), SECRET, algorithm="HS256"),
            closecodes.UNAUTHORIZED, 401),
    }


TOKEN_CASES = [
    "globex's token", "globex's read-only token", "globex's token re-labelled acme",
    "globex's token without its signature", "globex's expired token", "an expired acme token",
    "acme claims signed with another secret", "alg none with acme claims", "alg None with a signature",
    "HS256 signed with a public key (key confusion)", "RS256 header, HMAC over the public key",
    "RS256 header, HMAC over the real secret", "a kid pointing at a file", "a jku pointing elsewhere",
    "an empty HMAC key", "a token for ACME (another tenant, by case)", "a Cyrillic look-alike tenant",
    "a globex token whose patterns name acme",
]


def _traces(relay: RelayProcess) -> tuple[dict[str, list[tuple[Any, ...]]], int, int]:
    return store_state(relay), change_rows(relay), open_rooms(relay)


@pytest.mark.parametrize("case", TOKEN_CASES)
async def test_a_forged_or_foreign_token_is_refused_over_websocket_and_rest(relay: RelayProcess, case: str) -> None:
    token, code, status = forged_tokens(relay)[case]
    before = _traces(relay)
    update = protocol.sync_update(b"\x01\x01\x07\x00\x08\x01\x03ops\x01w\x06sneaky\x00")  # would write if let in
    for name in (VICTIM, VICTIM_STOCK):
        assert await closed_with(f"{relay.url(name)}?token={token}", update) == code
        assert await closed_with(relay.url(name), update, additional_headers={"Authorization": f"Bearer {token}"}) \
            == code
    async with httpx.AsyncClient(base_url=relay.http_url, timeout=10,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        for method, path, body in [
            ("GET", "/v1/tenants/acme/carts/target", None),
            ("POST", "/v1/tenants/acme/carts/target/items", {"product": "tee"}),
            ("POST", "/v1/tenants/acme/carts/target/clear", {}),
            ("POST", "/v1/tenants/acme/stock/target/adjustments",
             {"id": "evil", "sku": "tee", "delta": -5, "reason": "x", "actor": "eve"}),
            ("GET", "/v1/tenants/acme/events", None),
        ]:
            response = await http.request(method, path, json=body)
            assert response.status_code == status, (method, path, response.text)
    assert _traces(relay) == before


# -- naming another tenant's document -------------------------------------------------------------

WS_NAME_TRICKS = {
    # (raw path after /v1/sync/, whose token: the attacker's (globex) or the victim's tenant pattern)
    "encoded slashes climbing out of globex": "globex/cart/..%2F..%2Facme%2Fcart%2Ftarget",
    "encoded slash in the tenant": "globex%2F..%2Facme/cart/target",
    "encoded dot segments": "globex/cart/%2e%2e/%2e%2e/acme/cart/target",
    "upper-case encoded dot segments": "globex/%2E%2E/acme/cart/target",
    "double-encoded dot segments": "globex/cart/%252e%252e%252facme%252fcart%252ftarget",
    "double-encoded slash in the id": "globex/cart/x%252F..%252F..%252Facme%252Fcart%252Ftarget",
    "raw dot segments": "globex/cart/../../acme/cart/target",
    "a dot segment before the tenant": "./acme/cart/target",
    "raw backslashes": "globex/cart/..\\..\\acme\\cart\\target",
    "encoded backslashes": "globex/cart/..%5C..%5Cacme%5Ccart%5Ctarget",
    "overlong UTF-8 dots and slash": "globex/cart/%C0%AE%C0%AE%C0%AFacme",
    "overlong UTF-8 slash joining tenant and kind": "acme%C0%AFcart/target/x",
    "fullwidth solidus": "acme%EF%BC%8Fcart%EF%BC%8Ftarget/x/y",
    "encoded NUL after the tenant": "globex%00/cart/target",
    "Cyrillic a in the kind": "acme/c%D0%B0rt/target",
    "fullwidth letters in the id": "acme/cart/%EF%BD%94arget",
    "the tenant in upper case": "ACME/cart/target",
    "the tenant with a trailing dot": "acme./cart/target",
    "the tenant with a trailing tilde": "acme~/cart/target",
    "kind in mixed case": "acme/CaRt/target",
    "a semicolon parameter": "globex/cart/x;/../../acme/cart/target",
    "a fragment marker": "globex/cart/x%23/../../acme/cart/target",
    "an encoded question mark": "globex/cart/x%3Ftoken=/../acme/cart/target",
    "an extra segment": "acme/cart/target/..",
}
# The name of a document of acme's that exists (so the 4403s refuse a real target): 4404 for every
# malformed name, 4403 for a well-formed name outside the token's tenant (whatever the case).
WS_EXPECTED = {name: closecodes.INVALID_DOCUMENT_NAME for name in WS_NAME_TRICKS}
WS_EXPECTED.update({"the tenant in upper case": closecodes.FORBIDDEN,
                    "the tenant with a trailing dot": closecodes.FORBIDDEN,
                    "the tenant with a trailing tilde": closecodes.FORBIDDEN})


@pytest.mark.parametrize("trick", WS_NAME_TRICKS)
async def test_naming_another_tenants_document_over_websocket_is_refused(relay: RelayProcess, trick: str) -> None:
    path = WS_NAME_TRICKS[trick]
    before = _traces(relay)
    refused = rejected(relay)
    for token in (relay.token("globex"), relay.token("acme", "acme/cart/target")):
        code = await anyio.to_thread.run_sync(_raw_ws_close_code, relay, path.encode("latin-1"), token)
        assert code == WS_EXPECTED[trick], (trick, code)
    assert sum((rejected(relay) - refused).values()) == 2
    assert _traces(relay) == before


def _raw_ws_close_code(relay: RelayProcess, path: bytes, token: str) -> int | str:
    """Send an upgrade request with exactly this path (no client-side normalisation); return the close code."""
    with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as sock:
        sock.sendall(
            b"GET /v1/sync/" + path + b"?token=" + token.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + base64.b64encode(b"k" * 16)
            + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        data = b""
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 4:
            assert time.monotonic() < deadline, data
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, frames = data.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if not status.startswith(b"HTTP/1.1 101"):
            return status.decode("latin-1")
        assert frames[0] == 0x88, frames  # a close frame, unmasked, from the server
        return int.from_bytes(frames[2:4], "big")


REST_NAME_TRICKS: list[tuple[str, str, int, str]] = [
    # (name, raw path, status, problem) with globex's token
    ("encoded slashes climbing out of globex", "/v1/tenants/globex/carts/..%2F..%2Facme%2Fcarts%2Ftarget", 404,
     "not-found"),
    # Clients remove dot segments before sending (RFC 3986): then it is plainly globex asking for acme's cart.
    ("raw dot segments", "/v1/tenants/globex/../acme/carts/target", 403, "forbidden"),
    ("encoded dot segments as the tenant", "/v1/tenants/%2E%2E/acme/carts/target", 404, "not-found"),
    ("double-encoded dot segments", "/v1/tenants/globex/carts/%252E%252E%252Facme", 400, "invalid-document-name"),
    ("encoded backslashes", "/v1/tenants/globex/carts/..%5C..%5Cacme", 400, "invalid-document-name"),
    ("overlong UTF-8 dots", "/v1/tenants/globex/carts/%C0%AE%C0%AE", 400, "invalid-document-name"),
    ("the victim in upper case", "/v1/tenants/ACME/carts/target", 403, "forbidden"),
    ("Cyrillic a in the victim's name", "/v1/tenants/%D0%B0cme/carts/target", 400, "invalid-document-name"),
    ("fullwidth victim", "/v1/tenants/%EF%BD%81%EF%BD%83%EF%BD%8D%EF%BD%85/carts/target", 400,
     "invalid-document-name"),
    ("NUL after the victim", "/v1/tenants/acme%00/carts/target", 400, "invalid-document-name"),
    ("the victim's feed", "/v1/tenants/acme/events", 403, "forbidden"),
    ("the victim's feed through a dot segment", "/v1/tenants/globex/%2E%2E/acme/events", 404, "not-found"),
]


@pytest.mark.parametrize(("raw_path", "status", "slug"), [c[1:] for c in REST_NAME_TRICKS],
                         ids=[c[0] for c in REST_NAME_TRICKS])
def test_naming_another_tenants_document_over_rest_is_refused(relay: RelayProcess, raw_path: str, status: int,
                                                              slug: str) -> None:
    before = _traces(relay)
    with httpx.Client(base_url=relay.http_url, timeout=10,
                      headers={"Authorization": f"Bearer {relay.token('globex')}"}) as http:
        requests = [("GET", raw_path, None)]
        if not raw_path.endswith("/events"):
            requests.append(("POST", raw_path + "/items", {"product": "tee"}))
        for method, path, body in requests:
            url = httpx.URL(relay.http_url).copy_with(raw_path=path.encode("ascii"))
            assert_problem(http.request(method, url, json=body), status, slug)
    assert _traces(relay) == before


# -- read-only peers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("write", ["step 2", "update", "step 2 then update"])
async def test_a_read_only_peer_that_writes_is_closed_with_4405_and_leaves_no_change_row(
    relay: RelayProcess, write: str
) -> None:
    before = _traces(relay)
    url = relay.url_for(VICTIM, read_only=True)
    async with ypeer(url, acks=True) as reader:  # reading works, and its empty step 2 is acknowledged
        assert reader.acked == 1
        assert reader.doc.get_state() != b"\x00"  # it received the victim's cart
    sneaky = b"\x01\x01\x07\x00\x08\x01\x03ops\x01w\x06sneaky\x00"
    frames = {"step 2": [protocol.sync_step2(sneaky)], "update": [protocol.sync_update(sneaky)],
              "step 2 then update": [protocol.sync_step2(b"\x00\x00"), protocol.sync_update(sneaky)]}[write]
    hello = protocol.extension({"op": "hello", "acks": True})
    assert await closed_with(url, hello, *frames) == closecodes.READ_ONLY
    assert _traces(relay) == before
