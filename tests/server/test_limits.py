"""The relay's limits, hit on purpose: each closes only the offender, with its documented code.

Slow consumers (4408), message rate (4429), connections per tenant (4430), per token
holder (4431) and per process (4506), and the room cap (4503), each against a real relay
started with a small limit; a writer over its byte rate is not closed but read more
slowly. Peers that stay within the limits keep syncing, the offender's resources are
given back once it leaves (rooms, connection counts, the tenant's slots), and the relay
stays up.
"""

from __future__ import annotations

import statistics
import time

import anyio
import httpx
import pytest
from pycrdt import Array, Doc

from syncline.engine import closecodes, protocol
from syncline.engine.tokens import issue_token

from harness.hostile import (
    append_op, assert_alive, bystanders, close_code_after_draining, closed_with,
    gauge, non_reading_peer, open_rooms, rejected, wait_for,
)
from harness.relay_process import SECRET, RelayProcess
from harness.ypeer import ypeer

pytestmark = pytest.mark.anyio


def _ops(doc: Doc) -> list[object]:
    return doc.get("ops", type=Array).to_py() or []


def _connections(relay: RelayProcess) -> float:
    return gauge(relay, "syncline_connections")


async def test_a_slow_consumer_is_dropped_with_4408_and_the_room_keeps_going(
    relay_factory: type[RelayProcess],
) -> None:
    relay = relay_factory("--send-queue-messages", "8")  # type: ignore[call-arg]
    room = "acme/cart/flood"
    flood: list[tuple[str, bytes]] = []
    async with bystanders(relay, room) as watch, non_reading_peer(relay.url_for(room)) as slow:
        async with ypeer(relay.url_for(room), acks=True) as flooder, ypeer(relay.url_for(room)) as reader:
            # Large edits fill the slow peer's socket buffers quickly; then its queue of 8 overflows.
            while rejected(relay)["slow_consumer"] == 0:
                assert len(flood) < 400, "the slow consumer was never dropped"
                for _ in range(10):
                    i = len(flood)
                    update = await flooder.edit(append_op({"i": i, "pad": "x" * 60_000}))
                    flood.append((room, update))
                await flooder.wait_acked(len(flood) + 1)
            assert rejected(relay)["slow_consumer"] == 1  # only the slow one
            # The flooder and the reading peer keep going after the drop.
            for _ in range(5):
                i = len(flood)
                flood.append((room, await flooder.edit(append_op({"i": i}))))
            await flooder.wait_acked(len(flood) + 1)
            await reader.wait_until(lambda d: len(_ops(d)) == len(flood))
            assert [op["i"] for op in _ops(reader.doc)] == list(range(len(flood)))  # type: ignore[index]
            assert flooder.close_code is None and reader.close_code is None
            assert await close_code_after_draining(slow) == closecodes.SLOW_CONSUMER
            # Its connection is gone: the two bystanders, the flooder and the reader remain.
            await wait_for(lambda: _connections(relay), 4.0)
        assert watch.same is not None
        await watch.same.wait_until(lambda d: len(_ops(d)) == len(flood))
        watch.same_state = watch.same.doc.get_state()
        await watch.check(also_stored=flood)
    await wait_for(lambda: _connections(relay), 0.0)
    assert_alive(relay)


async def test_a_peer_over_its_message_rate_is_closed_with_4429(relay_factory: type[RelayProcess]) -> None:
    relay = relay_factory("--rate-messages-per-second", "5", "--rate-burst", "10")  # type: ignore[call-arg]
    room = "acme/cart/chatty"
    async with bystanders(relay, room) as watch:
        # 30 query-awareness frames at once: the first 10 (the burst) pass, then 4429. Nothing is written.
        assert await closed_with(relay.url_for(room), *[b"\x03"] * 30) == closecodes.RATE_LIMITED
        assert rejected(relay)["rate_limited"] == 1
        await watch.check()  # the bystanders' own budgets are untouched
        # The limit is per connection: the same tenant reconnects and writes at a sustainable pace.
        async with ypeer(relay.url_for(room), acks=True) as calm:
            for i in range(3):
                await calm.edit(lambda d, i=i: d.get("ops", type=Array).append({"calm": i}))
                await anyio.sleep(0.25)
            await calm.wait_acked(4)
    await wait_for(lambda: _connections(relay), 0.0)
    assert_alive(relay)


async def test_a_tenant_over_its_connection_limit_gets_4430_and_other_tenants_do_not(
    relay_factory: type[RelayProcess],
) -> None:
    relay = relay_factory("--max-connections-per-tenant", "3")  # type: ignore[call-arg]
    cart, stock = "acme/cart/busy", "acme/stock/busy"
    async with ypeer(relay.url_for(cart), acks=True) as a1, ypeer(relay.url_for(cart), acks=True) as a2:
        async with ypeer(relay.url_for(stock), acks=True) as a3:
            rows_before = relay.stored_rows()
            for _ in range(3):  # refused again and again; each refusal frees what it took
                assert await closed_with(relay.url_for(cart)) == closecodes.TOO_MANY_CONNECTIONS
            assert rejected(relay)["too_many_connections"] == 3
            assert _connections(relay) == 3.0
            # Another tenant is not affected.
            async with ypeer(relay.url_for("globex/cart/busy"), acks=True) as g:
                await g.edit(lambda d: d.get("ops", type=Array).append({"globex": 1}))
                await g.wait_acked(2)
            # The tenant's own peers keep syncing.
            await a1.edit(lambda d: d.get("ops", type=Array).append({"a1": 1}))
            await a1.wait_acked(2)
            await a2.wait_until(lambda d: {"a1": 1.0} in _ops(d))
            await a3.edit(lambda d: d.get("ops", type=Array).append({"a3": 1}))
            await a3.wait_acked(2)
            assert len(relay.stored_rows()) == len(rows_before) + 3
        # a3 left: exactly one slot is free again.
        await wait_for(lambda: _connections(relay), 2.0)
        async with ypeer(relay.url_for(stock), acks=True) as again:
            assert again.synced.is_set()
            assert await closed_with(relay.url_for(stock)) == closecodes.TOO_MANY_CONNECTIONS
        # Peers closed for bad input give their slot back too.
        for _ in range(3):
            assert await closed_with(relay.url_for(cart), b"\x07") == closecodes.INVALID_MESSAGE
            junk = protocol.sync_update(b"junk")
            assert await closed_with(relay.url_for(cart), junk) == closecodes.INVALID_UPDATE
        async with ypeer(relay.url_for(cart)) as last:
            assert {"a1": 1.0} in _ops(last.doc)
    await wait_for(lambda: _connections(relay), 0.0)
    async with ypeer(relay.url_for(cart)), ypeer(relay.url_for(cart)), ypeer(relay.url_for(stock)):
        pass  # all three slots are free once everyone has left
    assert_alive(relay)


async def test_a_room_over_the_room_cap_gets_4503_and_open_rooms_keep_working(
    relay_factory: type[RelayProcess],
) -> None:
    relay = relay_factory(  # type: ignore[call-arg]
        "--max-rooms", "2", "--room-idle-seconds", "0.3", "--max-connections-per-tenant", "3"
    )
    first, second, third = "acme/cart/one", "acme/cart/two", "acme/cart/three"
    async with ypeer(relay.url_for(first), acks=True) as one:
        async with ypeer(relay.url_for(second), acks=True) as two:
            assert open_rooms(relay) == 2
            empty_write = protocol.sync_update(b"\x00\x00")
            for _ in range(3):  # each refusal gives back the tenant slot it held (3 allowed, 2 in use)
                assert await closed_with(relay.url_for(third), empty_write) == closecodes.ROOM_LIMIT
            assert await closed_with(relay.url_for("globex/cart/x")) == closecodes.ROOM_LIMIT  # a global cap
            assert rejected(relay)["room_limit"] == 4
            assert open_rooms(relay) == 2  # the refused rooms left nothing behind
            for peer in (one, two):
                await peer.edit(lambda d: d.get("ops", type=Array).append({"still": "working"}))
                await peer.wait_acked(2)
            # A second peer can still join a room that is already open.
            async with ypeer(relay.url_for(first)) as again:
                assert {"still": "working"} in _ops(again.doc)
        # The second room empties and is evicted; its place goes to the third.
        await wait_for(lambda: open_rooms(relay), 1)
        async with ypeer(relay.url_for(third), acks=True) as three:
            await three.edit(lambda d: d.get("ops", type=Array).append({"third": 1}))
            await three.wait_acked(2)
            assert open_rooms(relay) == 2
        assert one.close_code is None
    assert {doc for doc, _blob in relay.stored_rows()} == {first, second, third}
    await wait_for(lambda: _connections(relay), 0.0)
    assert_alive(relay)


async def test_idle_rooms_make_way_for_a_newcomer_instead_of_refusing_it(
    relay_factory: type[RelayProcess],
) -> None:
    # One tenant reads documents nobody edits (rooms open, no peers): with the idle timeout far
    # away, the cap would otherwise lock every other tenant out for that long.
    relay = relay_factory("--max-rooms", "3", "--room-idle-seconds", "600")  # type: ignore[call-arg]
    token = relay.token("acme")
    async with httpx.AsyncClient(base_url=relay.http_url, headers={"Authorization": f"Bearer {token}"}) as http:
        for n in range(6):
            response = await http.get(f"/v1/tenants/acme/carts/flood-{n}")
            assert response.status_code == 200, response.text
    assert open_rooms(relay) == 3
    async with ypeer(relay.url_for("globex/cart/x"), acks=True) as peer:
        await peer.edit(lambda d: d.get("ops", type=Array).append({"globex": 1}))
        await peer.wait_acked(2)
        assert open_rooms(relay) == 3
        # Rooms with peers are never evicted for a newcomer: with three busy rooms, the fourth waits.
        async with ypeer(relay.url_for("globex/cart/y")), ypeer(relay.url_for("globex/cart/z")):
            assert await closed_with(relay.url_for("globex/cart/w")) == closecodes.ROOM_LIMIT
        assert peer.close_code is None
    assert_alive(relay)


async def test_a_token_holder_over_its_connection_cap_gets_4431_and_the_rest_of_its_tenant_does_not(
    relay_factory: type[RelayProcess],
) -> None:
    relay = relay_factory(  # type: ignore[call-arg]
        "--max-connections-per-token", "2", "--max-connections-per-tenant", "10"
    )
    room = "acme/cart/shared"

    def url(subject: str | None, *patterns: str) -> str:
        return relay.url(room, issue_token(SECRET, "acme", list(patterns) or ["acme/*"], subject=subject))

    async with ypeer(url("till-1"), acks=True) as first, ypeer(url("till-1", "acme/cart/*")):
        # The same subject under another token is the same holder.
        for _ in range(2):
            assert await closed_with(url("till-1")) == closecodes.TOKEN_CONNECTIONS
        assert rejected(relay)["token_connections"] == 2
        # Other holders of the tenant connect and write; so do tokens without a subject, each its own holder.
        anonymous_url = url(None)  # one token (its iat fixed), held three times
        async with ypeer(url("till-2"), acks=True) as second, ypeer(anonymous_url), ypeer(anonymous_url):
            assert await closed_with(anonymous_url) == closecodes.TOKEN_CONNECTIONS
            async with ypeer(url(None, "acme/cart/shared")) as anonymous:
                await second.edit(lambda d: d.get("ops", type=Array).append({"till": 2}))
                await second.wait_acked(2)
                await anonymous.wait_until(lambda d: {"till": 2.0} in _ops(d))
            await first.edit(lambda d: d.get("ops", type=Array).append({"till": 1}))
            await first.wait_acked(2)
        assert rejected(relay)["token_connections"] == 3
        assert rejected(relay)["too_many_connections"] == 0
    # Both of till-1's connections left: its slots are free again.
    await wait_for(lambda: _connections(relay), 0.0)
    async with ypeer(url("till-1")), ypeer(url("till-1")) as again:
        assert {"till": 1.0} in _ops(again.doc)
    assert_alive(relay)


async def test_a_process_over_its_connection_cap_gets_4506_whatever_the_tenant(
    relay_factory: type[RelayProcess],
) -> None:
    relay = relay_factory("--max-connections", "3")  # type: ignore[call-arg]
    async with ypeer(relay.url_for("acme/cart/a"), acks=True) as acme, ypeer(relay.url_for("acme/cart/b")):
        async with ypeer(relay.url_for("globex/cart/a"), acks=True) as globex:
            for name in ("initech/cart/a", "acme/cart/a", "globex/stock/s"):
                assert await closed_with(relay.url_for(name)) == closecodes.SERVER_FULL
            assert rejected(relay)["process_connections"] == 3
            await acme.edit(lambda d: d.get("ops", type=Array).append({"acme": 1}))
            await acme.wait_acked(2)
            await globex.edit(lambda d: d.get("ops", type=Array).append({"globex": 1}))
            await globex.wait_acked(2)
        # One left: one place is free, for any tenant.
        await wait_for(lambda: _connections(relay), 2.0)
        async with ypeer(relay.url_for("initech/cart/a"), acks=True) as initech:
            await initech.edit(lambda d: d.get("ops", type=Array).append({"initech": 1}))
            await initech.wait_acked(2)
            assert await closed_with(relay.url_for("globex/cart/a")) == closecodes.SERVER_FULL
    await wait_for(lambda: _connections(relay), 0.0)
    assert_alive(relay)


async def test_a_writer_over_its_byte_rate_is_slowed_to_it_not_closed_and_other_rooms_stay_fast(
    relay_factory: type[RelayProcess],
) -> None:
    rate, burst, size, count = 200_000, 400_000, 100_000, 12
    relay = relay_factory(  # type: ignore[call-arg]
        "--rate-bytes-per-second", str(rate), "--rate-burst-bytes", str(burst)
    )
    flooded, calm = "acme/cart/flooded", "globex/cart/calm"
    round_trips: list[float] = []
    async with ypeer(relay.url_for(flooded), acks=True) as flooder, ypeer(relay.url_for(flooded)) as watcher:
        async with ypeer(relay.url_for(calm), acks=True) as writer, ypeer(relay.url_for(calm)) as reader:

            async def flood() -> None:
                for i in range(count):  # each send waits while the relay does not read (back-pressure)
                    await flooder.edit(append_op({"i": i, "pad": "x" * size}))

            start = time.monotonic()
            async with anyio.create_task_group() as tg:
                tg.start_soon(flood)
                while flooder.acked < count + 1:
                    sent = time.monotonic()
                    await writer.edit(append_op({"n": len(round_trips)}))
                    await reader.wait_until(lambda d: len(_ops(d)) == len(round_trips) + 1)
                    round_trips.append(time.monotonic() - sent)
                    await anyio.sleep(0.05)
                    assert time.monotonic() - start < 20, f"the flood was not acknowledged ({flooder.acked})"
            elapsed = time.monotonic() - start
            await watcher.wait_until(lambda d: len(_ops(d)) == count)
            assert flooder.close_code is None and writer.close_code is None
    # The burst passes at once, the rest at the rate: about 4 s for 1.2 MB (over loopback, unthrottled, ~0.1 s).
    expected = (count * size - burst) / rate
    assert 0.8 * expected < elapsed < expected + 4, f"{count * size} bytes acknowledged in {elapsed:.2f} s"
    p95 = statistics.quantiles(round_trips, n=20)[-1]
    assert p95 < 0.5, f"another room's round trip p95 was {p95 * 1000:.0f} ms during the flood"
    assert rejected(relay)["rate_limited"] == 0
    assert 0.8 * expected < gauge(relay, "syncline_throttled_seconds_total") < expected + 1
    assert_alive(relay)


async def test_a_message_larger_than_the_byte_burst_passes_after_waiting_for_a_full_burst(
    relay_factory: type[RelayProcess],
) -> None:
    relay = relay_factory(  # type: ignore[call-arg]
        "--rate-bytes-per-second", "200000", "--rate-burst-bytes", "100000"
    )
    room = "acme/cart/big-one"
    async with ypeer(relay.url_for(room), acks=True) as writer, ypeer(relay.url_for(room)) as reader:
        await anyio.sleep(0.6)  # the handshake's bytes are refilled: a full burst is available
        start = time.monotonic()
        await writer.edit(append_op({"pad": "x" * 300_000}))  # 3x the burst: waits for none of it
        await writer.edit(append_op({"small": 1}))  # behind the big one's 200 kB debt: about 1 s
        await writer.wait_acked(2)
        first = time.monotonic() - start
        await writer.wait_acked(3)
        second = time.monotonic() - start
        await reader.wait_until(lambda d: len(_ops(d)) == 2)
        assert writer.close_code is None
    assert first < 0.5, f"the large message waited {first:.2f} s with a full burst available"
    assert 0.8 < second < 3, f"the message after it was let through after {second:.2f} s"
    assert rejected(relay)["too_large"] == 0
    assert_alive(relay)
