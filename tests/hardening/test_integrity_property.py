"""Property: whatever order, repetition and chunking writers deliver their updates in, through the
relay, every acknowledged edit is kept, and once every writer is acknowledged the room holds
exactly the union of what they wrote.

Writers edit carts the way the engine does (``lines`` and ``ops`` in one transaction, the shape
pycrdt integrates only in part when it gets a writer's updates out of clock order). Each writer
sends merged chunks of its own updates in a random order, some twice, some updates in no chunk
at all; writers that answer the relay's sync step 1 (as every Yjs client does) fill the gaps,
the others have every update in some chunk. Some writers start from another writer's document
under the same subject (two tabs of one browser), so their updates depend on another client's.
A crash variant SIGKILLs the relay at random moments while reordering writers resend what was
not acknowledged, and checks every acknowledged edit after each restart.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, merge_updates
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from syncline.engine.tokens import issue_token
from harness.relay_process import SECRET, RelayProcess
from harness.ypeer import ypeer

from harness.writers import cart_writes, ops_of, raw_writer


ROOMS = itertools.count()


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    process = RelayProcess(tmp_path_factory.mktemp("integrity-property") / "relay",
                           ["--compaction-updates", "3", "--room-idle-seconds", "1"]).start()
    try:
        yield process
    finally:
        process.stop()


@dataclass
class WriterPlan:
    subject: str
    source: Doc
    updates: list[bytes]
    chunks: list[list[int]]
    answers: bool


@st.composite
def plans(draw: st.DrawFn) -> list[WriterPlan]:
    writers: list[WriterPlan] = []
    for index in range(draw(st.integers(1, 3))):
        count = draw(st.integers(1, 5))
        base = writers[-1] if writers and draw(st.booleans()) else None  # a second tab of the last writer
        source, updates = cart_writes(1000 + index, [f"w{index}-p{i}" for i in range(count)],
                                      base=base.source if base is not None else None)
        answers = draw(st.booleans())
        chunk = st.lists(st.integers(0, count - 1), min_size=1, max_size=count, unique=True)
        chunks = draw(st.lists(chunk, min_size=1, max_size=6))
        if not answers:  # nobody fills a gap for this writer: every update is in some chunk
            covered = {i for c in chunks for i in c}
            chunks += [[i] for i in range(count) if i not in covered]
            chunks = draw(st.permutations(chunks))
        subject = base.subject if base is not None else f"device-{index}"
        writers.append(WriterPlan(subject, source, updates, list(chunks), answers))
    return writers


def canonical(ops: list[object]) -> list[str]:
    return sorted(json.dumps(op, sort_keys=True) for op in ops)


def chunk_update(plan: WriterPlan, chunk: list[int]) -> bytes:
    parts = [plan.updates[i] for i in chunk]
    return parts[0] if len(parts) == 1 else merge_updates(*parts)


async def deliver(relay: RelayProcess, name: str, writers: list[WriterPlan], order: list[int]) -> None:
    async def run(plan: WriterPlan, delay: float) -> None:
        token = issue_token(SECRET, "acme", [name], subject=plan.subject)
        async with raw_writer(relay.url(name, token), source=plan.source if plan.answers else None) as writer:
            for chunk in plan.chunks:
                await writer.send(chunk_update(plan, chunk))
                await anyio.sleep(delay)
            await writer.wait_all_acked(timeout=5)

    async with anyio.create_task_group() as tg:
        for index, plan in enumerate(writers):
            tg.start_soon(run, plan, order[index % len(order)] / 1000)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writers=plans(), order=st.lists(st.integers(0, 3), min_size=1, max_size=3))
def test_any_delivery_order_ends_with_every_write_acknowledged_and_the_room_holding_all(
    relay: RelayProcess, writers: list[WriterPlan], order: list[int],
) -> None:
    name = f"acme/cart/p-{next(ROOMS)}"  # a new room per example, shrinking included
    expected = Doc()
    for plan in writers:
        expected.apply_update(plan.source.get_update())

    async def check() -> None:
        await deliver(relay, name, writers, order)
        async with ypeer(relay.url_for(name)) as reader:
            assert reader.doc.get_state() == expected.get_state()
            assert canonical(ops_of(reader.doc)) == canonical(ops_of(expected))

    anyio.run(check)


@pytest.mark.slow
def test_reordering_writers_keep_every_acknowledged_edit_through_sigkills(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    relay = RelayProcess(tmp_path_factory.mktemp("integrity-crash") / "relay", ["--compaction-updates", "4"]).start()
    rng = random.Random(11)
    name = "acme/cart/crash-reorder"
    devices = [cart_writes(2000 + d, [f"d{d}-p{i}" for i in range(30)]) for d in range(3)]
    outboxes = [list(range(30)) for _ in devices]  # what each device has not seen acknowledged
    acknowledged: set[tuple[int, int]] = set()

    async def device_round(d: int, most_chunks: int = 12) -> None:
        source, updates = devices[d]
        token = issue_token(SECRET, "acme", [name], subject=f"till-{d}")
        pending = outboxes[d]
        chunks: list[list[int]] = []
        unsent = list(pending)
        while unsent and len(chunks) < most_chunks:
            picked = rng.sample(unsent, k=min(len(unsent), rng.randint(1, 3)))
            unsent = [i for i in unsent if i not in picked]
            chunks.append(picked + ([rng.choice(picked)] if rng.random() < 0.3 else []))  # some twice
        rng.shuffle(chunks)
        writer = None
        try:
            async with raw_writer(relay.url(name, token), source=source if d == 0 else None) as writer:
                for chunk in chunks:
                    parts = [updates[i] for i in sorted(set(chunk))]
                    await writer.send(parts[0] if len(parts) == 1 else merge_updates(*parts), label=chunk)
                    await anyio.sleep(rng.random() / 200)
                await writer.wait_all_acked(timeout=3)
        except* (OSError, EOFError, ConnectionClosed, InvalidHandshake, AssertionError, TimeoutError):
            pass  # the relay was killed, or is down: what was acknowledged before counts
        for chunk in writer.acknowledged() if writer is not None else []:
            for i in chunk:
                acknowledged.add((d, i))
                if i in pending:
                    pending.remove(i)

    async def crash_round() -> None:
        async with anyio.create_task_group() as tg:
            for d in range(len(devices)):
                tg.start_soon(device_round, d)
            await anyio.sleep(0.02 + rng.random() / 10)
            relay.kill()

    async def present() -> set[tuple[int, int]]:
        async with ypeer(relay.url_for(name)) as reader:
            return {(int(op["by"]) - 2000, int(op["product"].split("-p")[1])) for op in ops_of(reader.doc)}

    try:
        for _ in range(6):
            anyio.run(crash_round)
            relay.start()
            have = anyio.run(present)
            assert acknowledged <= have, f"acknowledged but lost: {sorted(acknowledged - have)}"
        assert len(acknowledged) >= 5, "the kills came too early to test anything"
        for d in range(len(devices)):  # no more kills: every device sends its whole outbox, shuffled
            anyio.run(device_round, d, 1000)
        assert anyio.run(present) == {(d, i) for d in range(len(devices)) for i in range(30)}
    finally:
        relay.stop()
