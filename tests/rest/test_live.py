"""Live tenant endpoints against a real relay: sync-state, broadcast, ping, per-tenant gauges.

The relay runs in this process (its own event loop and a loopback socket); the peers are
real WebSocket clients (:mod:`harness.ypeer`), the feed readers real SSE streams.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from syncline.engine import protocol
from syncline.engine.protocol import AwarenessEntry

from harness.prometheus_text import by_label
from harness.ypeer import YPeer, ypeer

from .conftest import catalogued
from .helpers import assert_problem, store_state
from .inprocess import InProcessRelay

pytestmark = pytest.mark.anyio

LIVE = "/v1/tenants/{tenant}/live"


# -- helpers ---------------------------------------------------------------------------------


@asynccontextmanager
async def http(relay: InProcessRelay, token: str | None) -> AsyncIterator[httpx.AsyncClient]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=relay.http_url, headers=headers, timeout=10.0) as client:
        yield client


class Stream:
    """A change-feed stream read event by event (comments skipped)."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        data: list[str] = []
        with anyio.fail_after(timeout):
            async for line in self._lines:
                if line == "":
                    if data or fields:
                        return {"event": fields.get("event", "message"), "id": fields.get("id"),
                                "data": json.loads("\n".join(data)) if data else None}
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    data.append(value)
                else:
                    fields[name] = value
        raise AssertionError("the stream ended")

    async def next_of(self, names: set[str], timeout: float = 5.0) -> dict[str, Any]:
        """The next event named one of ``names``, skipping the feed's other events (connected, heartbeat,
        other change events); a broadcast not asked for is an error."""
        with anyio.fail_after(timeout):
            while True:
                event = await self.next(timeout)
                if event["event"] in names:
                    return event
                if event["event"] == "broadcast":
                    raise AssertionError(f"unexpected event {event}")


@asynccontextmanager
async def feed(client: httpx.AsyncClient, tenant: str) -> AsyncIterator[Stream]:
    async with client.stream("GET", f"/v1/tenants/{tenant}/events") as response:
        assert response.status_code == 200, await response.aread()
        yield Stream(response)


async def live_feed(stack: AsyncExitStack, relay: InProcessRelay, tenant: str, cart: str) -> Stream:
    """An open feed of ``tenant`` known to be reading: a cart write's event reached it."""
    client = await stack.enter_async_context(http(relay, relay.token(tenant)))
    stream = await stack.enter_async_context(feed(client, tenant))
    response = await client.post(f"/v1/tenants/{tenant}/carts/{cart}/items", json={"product": "tee"})
    assert response.status_code == 200, response.text
    event = await stream.next_of({"cart.changed"})
    assert event["data"]["id"] == cart
    return stream


def broadcasts(peer: YPeer) -> list[dict[str, Any]]:
    return [body for body in peer.extensions if body["op"] == "broadcast"]


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


async def announce(peer: YPeer, client_id: int, state: dict[str, Any] | None) -> None:
    entry = AwarenessEntry(client_id, 1, json.dumps(state) if state is not None else "null")
    await peer.ws.send(protocol.awareness(protocol.encode_awareness([entry])))


@pytest.fixture
def limited_relay(tmp_path: Path) -> Any:
    relay = InProcessRelay(catalogued(tmp_path / "relay"), broadcast_burst=3, broadcast_rate_per_second=0.5,
                           metrics_tenants=1).start()
    try:
        yield relay
    finally:
        relay.stop()


# -- broadcast -------------------------------------------------------------------------------


async def test_a_broadcast_reaches_the_tenants_hello_peers_and_feed_readers_and_no_one_else(
    rest_relay: InProcessRelay,
) -> None:
    relay = rest_relay
    async with AsyncExitStack() as stack:
        acme_feed = await live_feed(stack, relay, "acme", "c-feed")
        globex_feed = await live_feed(stack, relay, "globex", "g-feed")
        greeted = await stack.enter_async_context(ypeer(relay.url("acme/cart/c1", relay.token("acme")), hello=True))
        scoped = await stack.enter_async_context(
            ypeer(relay.url("acme/stock/s1", relay.token("acme", "acme/stock/s1", read_only=True)), acks=True))
        silent = await stack.enter_async_context(ypeer(relay.url("acme/stock/s1", relay.token("acme"))))
        other = await stack.enter_async_context(ypeer(relay.url("globex/cart/g1", relay.token("globex")),
                                                      hello=True))
        before = store_state(relay)
        message = {"text": "Closing in 10 minutes", "level": 2, "tags": ["ops", "é"]}
        async with http(relay, relay.token("acme")) as client:
            response = await client.post(LIVE.format(tenant="acme") + "/broadcast",
                                         json={"message": message, "type": "store.notice"})
        assert response.status_code == 202, response.text
        sent = response.json()
        assert re.fullmatch(r"[0-9a-f]{32}", sent["id"]) and sent["type"] == "store.notice"
        assert sent["peers"] == 2  # the two acme peers that said hello
        assert abs(sent["at"] / 1000 - time.time()) < 60

        await wait_for(lambda: len(broadcasts(greeted)) == 1 and len(broadcasts(scoped)) == 1)
        expected = {"op": "broadcast", "id": sent["id"], "type": "store.notice", "message": message, "at": sent["at"]}
        assert broadcasts(greeted) == [expected] and broadcasts(scoped) == [expected]

        event = await acme_feed.next_of({"broadcast"})
        assert event["id"] is None  # never part of the feed's history: Last-Event-ID does not move
        assert event["data"] == {key: expected[key] for key in ("id", "type", "message", "at")}
        assert store_state(relay) == before  # never stored

        # The others: a later globex write is the next event of globex's feed, and the peer that
        # never said hello got no Syncline frame at all (it could not parse one).
        async with http(relay, relay.token("globex")) as client:
            response = await client.post("/v1/tenants/globex/carts/g-feed/items", json={"product": "tee"})
            assert response.status_code == 200
        assert (await globex_feed.next_of({"cart.changed"}))["data"]["id"] == "g-feed"
        # a round trip on each peer: what the relay sent before its answer has arrived
        for peer in (silent, other):
            peer.synced = anyio.Event()
            await peer.ws.send(protocol.sync_step1(peer.doc.get_state()))
            with anyio.fail_after(5):
                await peer.synced.wait()
        assert silent.extensions == []
        assert broadcasts(other) == []


async def test_broadcasts_past_the_burst_are_refused_with_429_until_the_bucket_refills(
    limited_relay: InProcessRelay,
) -> None:
    relay = limited_relay
    async with ypeer(relay.url("acme/cart/c1", relay.token("acme")), hello=True) as peer:
        async with http(relay, relay.token("acme")) as client:
            path = LIVE.format(tenant="acme") + "/broadcast"
            for n in range(3):
                response = await client.post(path, json={"message": f"m{n}"})
                assert response.status_code == 202, response.text
            refused = await client.post(path, json={"message": "one too many"})
            body = assert_problem(refused, 429, "rate-limited")
            assert refused.headers["retry-after"] == "2"  # one broadcast every 2 s (0.5/s), none left
            assert body["retry_after"] == 2
            # another tenant has its own bucket
            async with http(relay, relay.token("globex")) as globex:
                response = await globex.post(LIVE.format(tenant="globex") + "/broadcast", json={"message": "hi"})
                assert response.status_code == 202
            await wait_for(lambda: len(broadcasts(peer)) == 3)
            assert [b["message"] for b in broadcasts(peer)] == ["m0", "m1", "m2"]  # the refused one never went
            await anyio.sleep(2.1)
            response = await client.post(path, json={"message": "after the pause"})
            assert response.status_code == 202, response.text
            await wait_for(lambda: len(broadcasts(peer)) == 4)


NASTY: list[tuple[str, bytes | str, dict[str, str], int, str]] = [
    ("not json", b"{message: 1}", {}, 400, "malformed-json"),
    ("an array", b'["message"]', {}, 400, "malformed-json"),
    ("NaN", b'{"message": NaN}', {}, 400, "malformed-json"),
    ("duplicate keys", b'{"message": "a", "message": "b"}', {}, 400, "malformed-json"),
    ("lone surrogate", b'{"message": "\\ud800"}', {}, 400, "malformed-json"),
    ("too deep", b'{"message": ' + b"[" * 40 + b"]" * 40 + b"}", {}, 400, "malformed-json"),
    ("not utf-8", b'{"message": "\xff"}', {}, 400, "malformed-json"),
    ("empty body", b"", {}, 400, "malformed-json"),
    ("text/plain", b'{"message": "hi"}', {"content-type": "text/plain"}, 415, "unsupported-media-type"),
    ("missing message", b'{"type": "x"}', {}, 422, "validation-error"),
    ("null message", b'{"message": null}', {}, 422, "validation-error"),
    ("blank message", b'{"message": "   "}', {}, 422, "validation-error"),
    ("unknown field", b'{"message": "hi", "to": "everyone"}', {}, 422, "validation-error"),
    ("null type", b'{"message": "hi", "type": null}', {}, 422, "validation-error"),
    ("empty type", b'{"message": "hi", "type": ""}', {}, 422, "validation-error"),
    ("type with a space", b'{"message": "hi", "type": "a b"}', {}, 422, "validation-error"),
    ("type not a string", b'{"message": "hi", "type": 5}', {}, 422, "validation-error"),
    ("long type", json.dumps({"message": "hi", "type": "t" * 65}), {}, 422, "validation-error"),
    ("huge message", json.dumps({"message": "x" * 2047}), {}, 422, "validation-error"),
    ("huge integer", b'{"message": {"n": 9007199254740992}}', {}, 422, "validation-error"),
    ("floats past the frame", json.dumps({"message": [0.5] * 500}), {}, 422, "validation-error"),
    ("body past the limit", json.dumps({"message": "x" * 300_000}), {}, 413, "payload-too-large"),
]


@pytest.mark.parametrize(("body", "headers", "status", "slug"), [case[1:] for case in NASTY],
                         ids=[case[0] for case in NASTY])
async def test_a_bad_broadcast_gets_a_clear_4xx_and_nothing_is_sent(
    rest_relay: InProcessRelay, body: bytes | str, headers: dict[str, str], status: int, slug: str,
) -> None:
    relay = rest_relay
    async with ypeer(relay.url("acme/cart/c1", relay.token("acme")), hello=True) as peer:
        async with http(relay, relay.token("acme")) as client:
            before = store_state(relay)
            response = await client.post(LIVE.format(tenant="acme") + "/broadcast", content=body,
                                         headers={"content-type": "application/json", **headers})
            assert_problem(response, status, slug)
            # the next good broadcast is the first one the peer gets
            good = await client.post(LIVE.format(tenant="acme") + "/broadcast", json={"message": "ok"})
            assert good.status_code == 202
            await wait_for(lambda: len(broadcasts(peer)) == 1)
            assert broadcasts(peer)[0]["message"] == "ok"
            assert store_state(relay) == before


async def test_only_a_writable_token_of_the_whole_tenant_may_broadcast(rest_relay: InProcessRelay) -> None:
    relay = rest_relay
    path = LIVE.format(tenant="acme") + "/broadcast"
    cases = [
        (None, 401, "unauthorized"),
        (relay.token("acme", read_only=True), 403, "read-only"),
        (relay.token("acme", "acme/cart/*"), 403, "forbidden"),
        (relay.token("globex"), 403, "forbidden"),
    ]
    async with ypeer(relay.url("acme/cart/c1", relay.token("acme")), hello=True) as peer:
        for token, status, slug in cases:
            async with http(relay, token) as client:
                assert_problem(await client.post(path, json={"message": "hi"}), status, slug)
        async with http(relay, relay.token("acme", "acme/*/*")) as client:
            response = await client.post(path, json={"message": "all kinds, all ids"})
            assert response.status_code == 202, response.text
        await wait_for(lambda: len(broadcasts(peer)) == 1)
        assert broadcasts(peer)[0]["message"] == "all kinds, all ids"


# -- sync-state ------------------------------------------------------------------------------


async def adjust(client: httpx.AsyncClient, location: str, adjustment_id: str, delta: int, at: int) -> None:
    response = await client.post(f"/v1/tenants/acme/stock/{location}/adjustments", json={
        "id": adjustment_id, "sku": "tee", "delta": delta, "reason": "count", "actor": "clerk", "at": at})
    assert response.status_code == 201, response.text


async def test_sync_state_reports_each_location_and_what_the_test_connected(rest_relay: InProcessRelay) -> None:
    relay = rest_relay
    async with http(relay, relay.token("acme")) as client:
        await adjust(client, "north", "a1", 5, 1_700_000_000_000)
        await adjust(client, "north", "a2", -8, 1_700_000_500_000)  # below zero: one open conflict
        await adjust(client, "south", "b1", 3, 1_700_000_900_000)
        async with AsyncExitStack() as stack:
            token = relay.token("acme")
            ann = await stack.enter_async_context(ypeer(relay.url("acme/cart/c1", token), hello=True))
            bob = await stack.enter_async_context(ypeer(relay.url("acme/cart/c1", token)))
            ann2 = await stack.enter_async_context(ypeer(relay.url("acme/stock/north", token)))
            cursor = await stack.enter_async_context(ypeer(relay.url("acme/stock/north", token)))
            elsewhere = await stack.enter_async_context(ypeer(relay.url("globex/cart/c1", relay.token("globex"))))
            await announce(ann, 11, {"user": {"id": "u-ann", "name": "Ann"}})
            await announce(bob, 12, {"user": {"name": "Bob", "color": "#f00"}})
            await announce(ann2, 13, {"user": {"id": "u-ann"}})  # Ann again, from the ledger
            await announce(cursor, 14, {"cursor": {"x": 1}})  # a client that names no user
            await announce(elsewhere, 15, {"user": {"id": "u-globex"}})

            def state(data: dict[str, Any]) -> bool:
                return data["kinds"]["cart"]["awareness_clients"] == 2 and \
                    data["kinds"]["stock"]["awareness_clients"] == 2

            data = await poll_state(client, state)
            assert data["tenant"] == "acme" and abs(data["server_time"] / 1000 - time.time()) < 60
            assert data["locations"] == [
                {"location": "north", "last_change_at": 1_700_000_500_000, "open_conflicts": 1,
                 "conflict_ids": data["locations"][0]["conflict_ids"], "peers": 2},
                {"location": "south", "last_change_at": 1_700_000_900_000, "open_conflicts": 0,
                 "conflict_ids": [], "peers": 0},
            ]
            assert len(data["locations"][0]["conflict_ids"]) == 1
            conflicts = (await client.get("/v1/tenants/acme/stock/north/conflicts")).json()["conflicts"]
            assert data["locations"][0]["conflict_ids"] == [c["id"] for c in conflicts]
            assert data["next_cursor"] is None
            assert data["kinds"]["cart"] == {"rooms": 1, "peers": 2, "hello_peers": 1, "awareness_clients": 2,
                                             "online_users": 2}
            assert data["kinds"]["stock"] == {"rooms": 2, "peers": 2, "hello_peers": 0, "awareness_clients": 2,
                                              "online_users": 1}
            assert data["online_users"] == 2  # Ann (by id, in a cart and a ledger) and Bob (by name)
            assert set(data["kinds"]) >= {"cart", "stock"}
            assert all(counts["peers"] == 0 for kind, counts in data["kinds"].items() if kind not in ("cart", "stock"))

            # A token for one ledger sees that ledger only.
            async with http(relay, relay.token("acme", "acme/stock/south")) as scoped:
                response = await scoped.get(LIVE.format(tenant="acme") + "/sync-state")
                assert response.status_code == 200, response.text
                narrow = response.json()
                assert [row["location"] for row in narrow["locations"]] == ["south"]
                assert narrow["kinds"]["cart"] == {"rooms": 0, "peers": 0, "hello_peers": 0,
                                                   "awareness_clients": 0, "online_users": 0}
                assert narrow["kinds"]["stock"]["rooms"] == 1 and narrow["kinds"]["stock"]["peers"] == 0
                assert narrow["online_users"] == 0

            # Pages of one location each cover the same list.
            first = (await client.get(LIVE.format(tenant="acme") + "/sync-state", params={"limit": 1})).json()
            assert [row["location"] for row in first["locations"]] == ["north"] and first["next_cursor"]
            second = (await client.get(LIVE.format(tenant="acme") + "/sync-state",
                                       params={"limit": 1, "cursor": first["next_cursor"]})).json()
            assert [row["location"] for row in second["locations"]] == ["south"]
            assert second["next_cursor"] is None

            await announce(bob, 12, None)  # Bob leaves (clock must grow: the relay drops a stale one)
        # every peer closed: nobody is connected, nobody is online
        data = await poll_state(client, lambda d: d["kinds"]["cart"]["peers"] == 0 and d["kinds"]["stock"]["peers"] == 0)
        assert data["online_users"] == 0
        assert all(counts["awareness_clients"] == 0 for counts in data["kinds"].values())


async def poll_state(client: httpx.AsyncClient, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    with anyio.fail_after(5):
        while True:
            response = await client.get(LIVE.format(tenant="acme") + "/sync-state")
            assert response.status_code == 200, response.text
            assert response.headers["cache-control"] == "no-store"
            data: dict[str, Any] = response.json()
            if ready(data):
                return data
            await anyio.sleep(0.02)


@pytest.mark.parametrize(("params", "slug"), [
    ({"limit": "0"}, "invalid-parameter"),
    ({"limit": "201"}, "invalid-parameter"),
    ({"limit": "x"}, "invalid-parameter"),
    ({"cursor": "not-a-cursor"}, "invalid-parameter"),
    ({"cursor": "W10"}, "invalid-parameter"),  # base64 of [] : well-formed, not one we give out
    ({"location": "north"}, "invalid-parameter"),
])
async def test_sync_state_refuses_bad_parameters(rest_relay: InProcessRelay, params: dict[str, str],
                                                 slug: str) -> None:
    async with http(rest_relay, rest_relay.token("acme")) as client:
        assert_problem(await client.get(LIVE.format(tenant="acme") + "/sync-state", params=params), 400, slug)
    async with http(rest_relay, None) as client:
        assert_problem(await client.get(LIVE.format(tenant="acme") + "/sync-state"), 401, "unauthorized")


# -- ping ------------------------------------------------------------------------------------


async def test_ping_echoes_the_send_time_with_the_servers_clock(rest_relay: InProcessRelay) -> None:
    path = LIVE.format(tenant="acme") + "/ping"
    async with http(rest_relay, rest_relay.token("acme", "acme/cart/c1", read_only=True)) as client:
        sent = round(time.time() * 1000)
        response = await client.post(path, json={"sent_at": sent})
        back = round(time.time() * 1000)
        assert response.status_code == 200, response.text
        pong = response.json()
        assert pong["sent_at"] == sent
        assert sent - 1000 <= pong["received_at"] <= pong["server_time"] <= back + 1000
        assert 0 <= pong["store_rtt_ms"] < 5000
        assert isinstance(pong["node"], str) and pong["node"]
        bare = await client.post(path)
        assert bare.status_code == 200 and bare.json()["sent_at"] is None
        for body in ({"sent_at": -1}, {"sent_at": "now"}, {"sent_at": 1.5}, {"at": 1}):
            assert_problem(await client.post(path, json=body), 422, "validation-error")
        assert_problem(await client.post(path, content=b"[1]", headers={"content-type": "application/json"}),
                       400, "malformed-json")
    async with http(rest_relay, rest_relay.token("globex")) as client:
        assert_problem(await client.post(path, json={}), 403, "forbidden")


# -- metrics ---------------------------------------------------------------------------------


def gauges(text: str, name: str) -> dict[str, float]:
    return by_label(text, name, "tenant")


async def test_per_tenant_gauges_count_connections_and_rooms_with_a_bounded_label_set(
    limited_relay: InProcessRelay,
) -> None:
    relay = limited_relay  # metrics_tenants=1: the busiest tenant by name, the rest under _other
    async with AsyncExitStack() as stack, http(relay, None) as client:
        for name in ("acme/cart/a", "acme/cart/a", "acme/stock/b"):
            await stack.enter_async_context(ypeer(relay.url(name, relay.token("acme"))))
        await stack.enter_async_context(ypeer(relay.url("globex/cart/g", relay.token("globex"))))
        await stack.enter_async_context(ypeer(relay.url("initech/cart/i", relay.token("initech"))))
        text = (await client.get("/metrics")).text
        assert gauges(text, "syncline_tenant_connections") == {"acme": 3.0, "_other": 2.0}
        assert gauges(text, "syncline_tenant_rooms") == {"acme": 2.0, "_other": 2.0}
    async with http(relay, None) as client:
        # the rooms stay open a while (idle eviction): their tenants keep series, at 0 connections
        await wait_for_metrics(client, lambda text: gauges(text, "syncline_tenant_connections") ==
                               {"acme": 0.0, "_other": 0.0})


async def wait_for_metrics(client: httpx.AsyncClient, ready: Callable[[str], bool]) -> None:
    with anyio.fail_after(5):
        while not ready((await client.get("/metrics")).text):
            await anyio.sleep(0.02)


async def test_every_tenant_has_its_gauges_below_the_bound(rest_relay: InProcessRelay) -> None:
    relay = rest_relay
    async with AsyncExitStack() as stack, http(relay, None) as client:
        await stack.enter_async_context(ypeer(relay.url("acme/cart/a", relay.token("acme"))))
        await stack.enter_async_context(ypeer(relay.url("globex/cart/g", relay.token("globex"))))
        text = (await client.get("/metrics")).text
        assert gauges(text, "syncline_tenant_connections") == {"acme": 1.0, "globex": 1.0}
        assert gauges(text, "syncline_tenant_rooms") == {"acme": 1.0, "globex": 1.0}
        async with http(relay, relay.token("acme")) as acme:
            assert (await acme.post(LIVE.format(tenant="acme") + "/broadcast", json={"message": "m"})).status_code \
                == 202
        text = (await client.get("/metrics")).text
        assert re.search(r"^syncline_broadcasts_total 1\.0$", text, re.M), text
