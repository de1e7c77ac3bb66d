"""No connection can take the relay's memory: send queues in bytes, awareness in count and bytes.

- A read-only peer that floods sync step 1 against a multi-MB document and never reads is
  closed with 4408 once a second copy of the document would not fit its ``--send-queue-bytes``;
  the relay's RSS grows by a few copies of the document, not one per request.
- A peer that announces more awareness states than its share is closed with 4413, its states
  are removed (the others are told), the room never holds more than its bound, and a late
  joiner whose client refuses frames over 1 MiB still joins and receives every state.

Each test prints what it measured (``pytest -s`` shows it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import pytest
from pycrdt import Array
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from syncline.engine import closecodes, protocol
from syncline.server.awareness import entry_bytes
from syncline.engine.protocol import AwarenessEntry, Kind
from harness.hostile import (
    append_op, assert_alive, bystanders, close_code_after_draining,
    gauge, non_reading_peer, rejected, wait_for,
)
from harness.relay_process import RelayProcess
from harness.ypeer import YPeer, ypeer

from harness.probes import MIB, rss_bytes

pytestmark = pytest.mark.anyio

RelayFactory = Callable[..., RelayProcess]
EDIT_BYTES = 900_000
"""One edit of the big document: under the 1 MiB message limit."""


class RssSampler:
    """The relay's RSS every 10 ms while the block runs: ``baseline`` before, ``peak`` during."""

    def __init__(self, relay: RelayProcess) -> None:
        self.relay = relay
        self.baseline = rss_bytes(relay)
        self.peak = self.baseline

    @asynccontextmanager
    async def sampling(self) -> AsyncIterator[RssSampler]:
        async def sample() -> None:
            while True:
                self.peak = max(self.peak, rss_bytes(self.relay))
                await anyio.sleep(0.01)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sample)
            try:
                yield self
            finally:
                self.peak = max(self.peak, rss_bytes(self.relay))
                tg.cancel_scope.cancel()

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


async def _big_document(relay: RelayProcess, room: str, megabytes: int) -> int:
    """Write about ``megabytes`` MB into ``room``; return the size of a fresh peer's step 2."""
    async with ypeer(relay.url_for(room), acks=True) as writer:
        edits = megabytes * 1_000_000 // EDIT_BYTES
        for i in range(edits):
            await writer.edit(append_op({"i": i, "pad": (f"{i:x}." * EDIT_BYTES)[:EDIT_BYTES]}))
        await writer.wait_acked(edits + 1, timeout=30)
        return len(writer.doc.get_update())


# -- (6) send queues bounded in bytes ----------------------------------------------------------------


async def test_a_peer_flooding_step_1_and_never_reading_is_closed_with_4408_and_memory_stays_bounded(
    relay_factory: RelayFactory,
) -> None:
    # A 3.6 MB document; the budget holds one answer, not two.
    relay = relay_factory("--send-queue-bytes", str(6 * MIB))
    room = "acme/cart/huge"
    size = await _big_document(relay, room, 4)
    assert size > 3 * 1_000_000
    async with bystanders(relay, room) as watch, non_reading_peer(relay.url_for(room, read_only=True)) as flooder:
        sampler = RssSampler(relay)
        async with sampler.sampling():
            for _ in range(300):  # 4 bytes each, each asking for the whole document
                await flooder.send(protocol.sync_step1(b"\x00"))
            with anyio.fail_after(15):
                while rejected(relay)["slow_consumer"] == 0:
                    await anyio.sleep(0.02)
            code = await close_code_after_draining(flooder)
        print(f"\nstep 1 flood against a {size / MIB:.1f} MiB document: relay RSS {sampler.baseline / MIB:.0f} MiB "
              f"-> peak {sampler.peak / MIB:.0f} MiB (+{sampler.growth / MIB:.0f} MiB); closed with {code}")
        assert code == closecodes.SLOW_CONSUMER
        assert sampler.growth < 100 * MIB, f"the relay grew by {sampler.growth / MIB:.0f} MiB"
        assert rejected(relay)["slow_consumer"] == 1
        await wait_for(lambda: gauge(relay, "syncline_connections"), 2.0)  # the two bystanders
        await watch.check()  # the room's other peer and a neighbour room keep syncing
    assert_alive(relay)


@pytest.mark.slow
async def test_a_step_1_flood_within_the_budget_holds_two_answers_and_the_keepalive_releases_it(
    relay_factory: RelayFactory,
) -> None:
    # The default budget (16 MiB) holds two answers of a 3.6 MB document: the flood is not a slow
    # consumer, but a peer that never reads answers no ping either. Its socket holds an answer
    # uvicorn cannot write, so the relay aborts it once the keepalive has timed out.
    relay = relay_factory("--ws-ping-seconds", "1")
    room = "acme/cart/huge"
    size = await _big_document(relay, room, 4)
    async with non_reading_peer(relay.url_for(room, read_only=True)) as flooder:
        sampler = RssSampler(relay)
        async with sampler.sampling():
            for _ in range(300):
                await flooder.send(protocol.sync_step1(b"\x00"))
            await wait_for(lambda: gauge(relay, "syncline_connections"), 0.0, timeout=15)
        print(f"\nstep 1 flood within the budget ({size / MIB:.1f} MiB document): relay RSS "
              f"{sampler.baseline / MIB:.0f} MiB -> peak {sampler.peak / MIB:.0f} MiB (+{sampler.growth / MIB:.0f} MiB)")
        assert sampler.growth < 100 * MIB, f"the relay grew by {sampler.growth / MIB:.0f} MiB"
        assert rejected(relay)["slow_consumer"] == 0
    async with ypeer(relay.url_for(room)) as fresh:
        assert len(fresh.doc.get("ops", type=Array)) == 4
    assert_alive(relay)


async def test_step_1_frames_sent_back_to_back_share_answers_instead_of_getting_one_each(relay_factory: RelayFactory) -> None:
    relay = relay_factory()
    room = "acme/cart/asked-twice"
    await _big_document(relay, room, 1)
    async with connect(relay.url_for(room), max_size=None) as ws:
        for _ in range(50):  # nothing read in between: they arrive as fast as the socket takes them
            await ws.send(protocol.sync_step1(b"\x00"))
        answers = 0
        with anyio.move_on_after(1.5):  # quiet for this long: every answer has arrived
            async for frame in ws:
                assert isinstance(frame, bytes)
                answers += protocol.decode(frame).kind is Kind.STEP2
        print(f"\n50 step 1 frames at once: {answers} answers")
        assert 1 <= answers <= 10, "each answer waiting to be written covers every step 1 behind it"
        assert ws.close_code is None
    assert rejected(relay)["slow_consumer"] == 0


async def test_one_answer_bigger_than_the_budget_still_reaches_a_fresh_peer(relay_factory: RelayFactory) -> None:
    relay = relay_factory("--send-queue-bytes", str(1 * MIB))
    room = "acme/cart/bigger-than-budget"
    size = await _big_document(relay, room, 2)
    assert size > 1 * MIB
    async with ypeer(relay.url_for(room)) as fresh:
        assert len(fresh.doc.get("ops", type=Array)) == 2
        assert fresh.close_code is None
    assert rejected(relay)["slow_consumer"] == 0
    assert_alive(relay)


# -- (7) awareness bounded per connection and per room ---------------------------------------------


def _state(name: str, pad: int = 0) -> str:
    return json.dumps({"user": {"name": name, "pad": "p" * pad}})


def _awareness_frame(*entries: AwarenessEntry) -> bytes:
    return protocol.awareness(protocol.encode_awareness(list(entries)))


def _states(peer: YPeer) -> dict[int, str]:
    """Every client's latest state as ``peer`` has been told them (removed clients dropped)."""
    states: dict[int, str] = {}
    for payload in peer.awareness:
        for entry in protocol.decode_awareness(payload):
            if entry.state == "null":
                states.pop(entry.client_id, None)
            else:
                states[entry.client_id] = entry.state
    return states


async def _announce_until_closed(flooder: YPeer, first_client: int) -> int:
    """Announce four new clients at a time until the relay closes ``flooder``; return how many were sent."""
    client = first_client
    with anyio.fail_after(10):
        while flooder.close_code is None:
            batch = [AwarenessEntry(client + i, 1, _state(f"f{client + i}")) for i in range(4)]
            try:
                await flooder.ws.send(_awareness_frame(*batch))
            except ConnectionClosed:
                break
            client += 4
            flooder.changed = anyio.Event()
            with anyio.move_on_after(0.02):
                await flooder.changed.wait()
        while flooder.close_code is None:
            flooder.changed = anyio.Event()
            await flooder.changed.wait()
    return client - first_client


async def test_an_awareness_flood_is_closed_at_its_share_and_its_states_go_with_it(
    relay_factory: RelayFactory,
) -> None:
    relay = relay_factory()  # the defaults: 16 states and 64 KiB per connection
    room = "acme/cart/presence"
    async with ypeer(relay.url_for(room)) as watcher, ypeer(relay.url_for(room)) as honest:
        await honest.ws.send(_awareness_frame(AwarenessEntry(1, 1, _state("ann"))))
        await wait_for(lambda: _states(watcher), {1: _state("ann")})
        sampler = RssSampler(relay)
        async with sampler.sampling(), ypeer(relay.url_for(room, read_only=True)) as flooder:
            sent = await _announce_until_closed(flooder, 5000)
        print(f"\nawareness flood: closed with {flooder.close_code} after {sent} states; relay RSS "
              f"{sampler.baseline / MIB:.0f} -> {sampler.peak / MIB:.0f} MiB")
        assert flooder.close_code == closecodes.TOO_LARGE
        assert sent <= 20, "closed with the message that takes it over 16 states"
        assert rejected(relay)["awareness_limit"] == 1
        # The watcher was told of the flooder's clients, then told they left; ann stays.
        await wait_for(lambda: _states(watcher), {1: _state("ann")})
        told = {e.client_id for p in watcher.awareness for e in protocol.decode_awareness(p) if e.client_id >= 5000}
        assert len(told) == 16
        async with ypeer(relay.url_for(room)) as late:
            await wait_for(lambda: _states(late), {1: _state("ann")})
        assert honest.close_code is None and watcher.close_code is None
    assert_alive(relay)


async def test_room_awareness_stays_under_its_bound_and_a_late_joiner_with_a_1_mib_limit_gets_it_all(
    relay_factory: RelayFactory,
) -> None:
    bound = 1_200_000
    relay = relay_factory("--awareness-room-bytes", str(bound))
    room = "acme/cart/crowded"
    state = _state("x", pad=40_000)  # 40 KB: 29 fit the room, more than 1 MiB in all
    async with ypeer(relay.url_for(room)) as watcher, AsyncExitStack() as stack:
        # Announcers that never read, with unbounded client buffers so that they close promptly.
        url = relay.url_for(room)
        announcers = [await stack.enter_async_context(connect(url, max_queue=None)) for _ in range(35)]
        for n, announcer in enumerate(announcers):
            await announcer.send(_awareness_frame(AwarenessEntry(1000 + n, 1, state)))
        fit = bound // len(state.encode())
        await wait_for(lambda: len(_states(watcher)), fit, timeout=10)
        await wait_for(lambda: rejected(relay)["awareness_room_full"], 35 - fit)
        kept = _states(watcher)
        assert sum(entry_bytes(AwarenessEntry(c, 1, s)) for c, s in kept.items()) <= bound
        async with ypeer(relay.url_for(room), max_size=2**20) as late:
            await wait_for(lambda: _states(late), kept)
            sizes = [len(protocol.awareness(payload)) for payload in late.awareness]
            print(f"\nlate joiner: {len(kept)} states ({sum(sizes) / MIB:.2f} MiB) in frames of {sizes} bytes")
            assert len(sizes) >= 2 and max(sizes) <= 2**20
            assert late.close_code is None
        # Leaving peers take their states: the room makes way again.
        await stack.aclose()
    async with ypeer(relay.url_for(room)) as alone, ypeer(relay.url_for(room)) as other:
        await alone.ws.send(_awareness_frame(AwarenessEntry(7, 1, state)))
        await wait_for(lambda: _states(other), {7: state})
    assert_alive(relay)
