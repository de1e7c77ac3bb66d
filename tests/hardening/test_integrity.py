"""The relay acknowledges only what its document holds, and no writer erases or hides another's work.

Against a real relay process: a writer's updates delivered out of clock order are held
(never half-integrated and acknowledged), the relay asks for what is missing, and every
acknowledged edit survives a SIGKILL and compaction; structs, GC or skip ranges of a
client ID bound to another writer are refused with 4409, durably; malformed updates
(trailing bytes, Yjs's limits-test inputs, absurd claims) are refused before pycrdt
allocates for them.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from pycrdt import Doc

from syncline.engine import closecodes, protocol
from syncline.engine.tokens import issue_token
from syncline.engine.protocol import write_varuint
from harness.hostile import assert_alive, bystanders, closed_with
from harness.relay_process import SECRET, RelayProcess
from harness.ypeer import ypeer

from harness.fuzzing import YJS_LIMITS_INPUTS
from harness.probes import Bystander
from harness.writers import cart_writes, lines_of, ops_of, raw_writer

pytestmark = pytest.mark.anyio

PRODUCTS = ["tee", "mug", "hat"]


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    # Compaction after every two rows: a half-integrated update would be folded away for good.
    process = RelayProcess(tmp_path_factory.mktemp("integrity") / "relay",
                           ["--compaction-updates", "2", "--held-updates-max", "8"]).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def steady(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    """A relay that does not compact during a test, so a bystander can audit its store row by row."""
    process = RelayProcess(tmp_path_factory.mktemp("integrity-steady") / "relay",
                           ["--room-idle-seconds", "600"]).start()
    try:
        yield process
    finally:
        process.stop()


def url_as(relay: RelayProcess, name: str, subject: str, *, ttl: int | None = None) -> str:
    tenant = name.split("/", 1)[0]
    return relay.url(name, issue_token(SECRET, tenant, [name], subject=subject, ttl_seconds=ttl))


async def read(relay: RelayProcess, name: str) -> Doc:
    async with ypeer(relay.url_for(name)) as reader:
        return reader.doc


# -- 1. out-of-order updates from one writer --------------------------------------------------------


async def test_a_writers_updates_out_of_clock_order_are_all_acknowledged_and_all_kept(relay: RelayProcess) -> None:
    name = "acme/cart/out-of-order"
    source, updates = cart_writes(101, PRODUCTS)
    async with raw_writer(url_as(relay, name, "till-1")) as writer:
        for index in (0, 2, 1):
            await writer.send(updates[index])
        await writer.wait_all_acked()
        assert writer.asked >= 1, "the relay did not ask for what it lacked"
    doc = await read(relay, name)
    assert sorted(op["product"] for op in ops_of(doc)) == sorted(PRODUCTS)
    assert doc.get_state() == source.get_state()
    relay.kill()
    relay.start()
    doc = await read(relay, name)
    assert sorted(lines_of(doc)) == sorted(PRODUCTS)
    assert sorted(op["product"] for op in ops_of(doc)) == sorted(PRODUCTS)


async def test_a_held_update_is_completed_by_the_writers_answer_to_the_relays_step_1(relay: RelayProcess) -> None:
    name = "acme/cart/asked"
    source, updates = cart_writes(102, PRODUCTS)
    async with raw_writer(url_as(relay, name, "till-2"), source=source) as writer:
        await writer.send(updates[0])
        await writer.send(updates[2])  # update 1 never sent as such: the step 2 answer brings it
        await writer.wait_all_acked()
        assert writer.asked == 1
    doc = await read(relay, name)
    assert sorted(op["product"] for op in ops_of(doc)) == sorted(PRODUCTS)


async def test_acknowledgements_stop_before_a_held_update_until_it_lands(relay: RelayProcess) -> None:
    name = "acme/cart/prefix"
    _, updates = cart_writes(103, ["a", "b", "c", "d"])
    async with raw_writer(url_as(relay, name, "till-3")) as writer:
        await writer.send(updates[0])
        await writer.wait_all_acked()
        await writer.send(updates[2])  # held: needs 1
        await writer.send(updates[3])  # held: needs 2
        with anyio.fail_after(5):
            while writer.asked < 1:
                writer.changed = anyio.Event()
                await writer.changed.wait()
        assert writer.acked == 1
        await writer.send(updates[1])
        await writer.wait_all_acked()
    assert sorted(op["product"] for op in ops_of(await read(relay, name))) == ["a", "b", "c", "d"]


async def test_a_writer_holding_more_out_of_order_updates_than_allowed_is_closed_with_4425(
    steady: RelayProcess,
) -> None:
    name = "acme/cart/too-early"
    _, updates = cart_writes(104, [f"p{i}" for i in range(80)])
    async with bystanders(steady, name) as watch, raw_writer(url_as(steady, name, "till-4")) as writer:
        for update in updates[1:]:  # every one waits for update 0, which never comes
            await writer.send(update)
        assert await writer.wait_closed() == closecodes.OUT_OF_ORDER
        assert writer.acked == 0
        await watch.check()


# -- 3. client IDs bound to their writer ------------------------------------------------------------


def gc_struct(client: int, clock: int, length: int) -> bytes:
    """A v1 update holding one GC struct of ``client`` over ``[clock, clock + length)``."""
    v = write_varuint
    return v(1) + v(1) + v(client) + v(clock) + b"\x00" + v(length) + v(0)


def skip_then_gc(client: int, clock: int, skip: int) -> bytes:
    v = write_varuint
    return v(1) + v(2) + v(client) + v(clock) + b"\x0a" + v(skip) + b"\x00" + v(1) + v(0)


async def test_another_writers_gc_or_skip_over_an_offline_devices_future_clocks_is_refused(
    steady: RelayProcess,
) -> None:
    name = "acme/cart/victim"
    device, updates = cart_writes(201, ["tee"])
    async with raw_writer(url_as(steady, name, "phone")) as phone:
        await phone.send(updates[0])
        await phone.wait_all_acked()
    clock = 2  # one transaction: a map entry and an array item
    _, later = cart_writes(201, ["mug"], base=device)  # the phone's offline edit, clocks 2..3
    attacks = [gc_struct(201, clock, 1000), skip_then_gc(201, clock, 500), gc_struct(201, clock + 5, 1)]
    for attack in attacks:
        async with bystanders(steady, name, same_room=False) as watch:
            code = await closed_with(url_as(steady, name, "mallory"), protocol.sync_update(attack))
            assert code == closecodes.CLIENT_ID_TAKEN
            await watch.check()
    steady.kill()
    steady.start()  # the binding is durable
    code = await closed_with(url_as(steady, name, "mallory"), protocol.sync_update(attacks[0]))
    assert code == closecodes.CLIENT_ID_TAKEN
    async with raw_writer(url_as(steady, name, "phone")) as phone:  # a new token, the same subject
        await phone.send(later[0])
        await phone.wait_all_acked()
    doc = await read(steady, name)
    assert sorted(lines_of(doc)) == ["mug", "tee"]


async def test_a_device_whose_client_id_collides_with_anothers_is_told_not_ignored(steady: RelayProcess) -> None:
    name = "acme/cart/collision"
    _, first = cart_writes(301, ["tee", "mug"])
    _, second = cart_writes(301, ["hat"])  # same client ID, other content, clocks already taken
    async with raw_writer(url_as(steady, name, "till-a")) as till:
        for update in first:
            await till.send(update)
        await till.wait_all_acked()
    async with raw_writer(url_as(steady, name, "till-b")) as other:
        await other.send(second[0])
        assert await other.wait_closed() == closecodes.CLIENT_ID_TAKEN
        assert other.acked == 0
    assert sorted(lines_of(await read(steady, name))) == ["mug", "tee"]


async def test_the_same_subject_keeps_its_client_ids_across_tokens_and_connections(steady: RelayProcess) -> None:
    name = "acme/cart/reissued"
    _, updates = cart_writes(401, ["a", "b", "c"])
    urls = [url_as(steady, name, "back-office", ttl=3600 + index) for index in range(len(updates))]
    assert len(set(urls)) == len(urls)  # three different tokens
    for url, update in zip(urls, updates, strict=True):
        async with raw_writer(url) as writer:
            await writer.send(update)
            await writer.wait_all_acked()
    assert sorted(lines_of(await read(steady, name))) == ["a", "b", "c"]


# -- 4 and 5. malformed updates and memory bombs ------------------------------------------------------



async def test_an_update_followed_by_trailing_bytes_is_refused_and_nothing_is_stored(steady: RelayProcess) -> None:
    name = "acme/cart/trailing"
    _, updates = cart_writes(501, ["tee"])
    async with bystanders(steady, name) as watch:
        for tail in (b"\x00", b"\xff" * 3, b"\x00" * 900_000):
            code = await closed_with(url_as(steady, name, "x"), protocol.sync_update(updates[0] + tail))
            assert code in (closecodes.INVALID_UPDATE, closecodes.TOO_LARGE)
        await watch.check()


async def test_yjs_limits_inputs_and_absurd_claims_are_refused_without_allocating(steady: RelayProcess) -> None:
    name = "acme/cart/limits"
    v = write_varuint
    absurd = [
        v(1) + v(2**40) + v(7) + v(0),  # a trillion structs
        gc_struct(9, 0, 553_253),  # a GC range past the documented 100,000
        gc_struct(9, 0, 100_001),
        v(1) + v(1) + v(9) + v(0) + b"\x0a" + v(2**52) + v(0),  # a skip near 2**53
        v(0) + v(1) + v(9) + v(2**30) + v(0) + v(1),  # a delete set claiming a billion ranges
    ]
    before = steady.peak_rss()
    async with bystanders(steady, name) as watch:
        for payload in YJS_LIMITS_INPUTS + absurd:
            for frame in (protocol.sync_update(payload), protocol.sync_step2(payload)):
                assert await closed_with(url_as(steady, name, "x"), frame) == closecodes.INVALID_UPDATE
        await watch.check()
    grown = steady.peak_rss() - before
    assert grown < 5 * 1024 * 1024, f"peak RSS grew by {grown / 2**20:.1f} MiB"


async def test_the_seven_byte_memory_bomb_costs_no_memory_nor_stalls_rooms_even_twenty_at_once(
    steady: RelayProcess,
) -> None:
    name = "acme/cart/bomb"
    frame = bytes.fromhex("000204ffffff7a")  # a sync update claiming 256 million clients in four bytes
    before = steady.peak_rss()
    codes: list[int | None] = []

    async def bomb() -> None:
        codes.append(await closed_with(url_as(steady, name, "x"), frame))

    rows_before = steady.stored_rows()
    with Bystander(steady, "acme/cart/bomb-bystander", period=0.002) as bystander:
        for _ in range(5):
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(bomb)
    assert codes == [closecodes.INVALID_UPDATE] * 100
    assert [row for row in steady.stored_rows() if row[0] != "acme/cart/bomb-bystander"] == [
        row for row in rows_before if row[0] != "acme/cart/bomb-bystander"]
    grown = steady.peak_rss() - before
    print(f"100 bombs, 20 at a time: peak RSS +{grown / 2**20:.2f} MiB; bystander {bystander.summary()}")
    assert grown < 5 * 1024 * 1024, f"peak RSS grew by {grown / 2**20:.1f} MiB"
    bystander.check(max_latency=1.0, median_latency=0.05)
    assert_alive(steady)
