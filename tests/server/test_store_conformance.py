"""One conformance suite for every store backend.

Each backend is one param of the ``store_factory`` fixture: a callable that returns
a new, not yet opened store over the test's own storage (calling it again gives a
store over the same data, as a restarted relay would). The PostgreSQL param runs
each test in a fresh schema of the test server (``harness/services.py``: skipped when
it is absent, failed when ``SYNCLINE_REQUIRE_SERVICES=1``); nothing below names a backend.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pycrdt
import pytest

from syncline.server.store import Binding, ClientsBound, StoredDoc, StoreUnavailable
from syncline.server.store.sqlite import SQLiteStore
from harness.services import drop_schema, fresh_schema_name, postgres_dsn

pytestmark = pytest.mark.anyio

StoreFactory = Callable[[], Any]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiosqlite runs on asyncio


@pytest.fixture(params=["sqlite", "postgresql"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    if request.param == "sqlite":
        path = tmp_path / "data" / "store.db"  # parent directory does not exist yet
        yield lambda: SQLiteStore(path)
    elif request.param == "postgresql":
        from syncline.server.store.postgres import PostgresStore

        dsn, schema = postgres_dsn(), fresh_schema_name()  # the schema does not exist yet
        try:
            yield lambda: PostgresStore(dsn, schema=schema)
        finally:
            drop_schema(dsn, schema)
    else:  # pragma: no cover - future backends
        raise AssertionError(request.param)


def map_update(doc: pycrdt.Doc[Any], key: str, value: object) -> bytes:
    """Set ``key`` in ``doc``'s map "m" and return the Yjs update of exactly that edit."""
    before = doc.get_state()
    doc.get("m", type=pycrdt.Map)[key] = value
    return doc.get_update(before)


def rebuild(stored: StoredDoc) -> pycrdt.Doc[Any]:
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    if stored.snapshot is not None:
        doc.apply_update(stored.snapshot)
    for _, update in stored.updates:
        doc.apply_update(update)
    return doc


async def test_append_returns_strictly_increasing_seqs(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        seqs = [await store.append(f"t/cart/{i % 3}", bytes([i])) for i in range(30)]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert seqs[0] >= 1


async def test_load_returns_each_documents_updates_in_order_and_nothing_else(
    store_factory: StoreFactory,
) -> None:
    expected: dict[str, list[tuple[int, bytes]]] = {"a/cart/1": [], "a/cart/2": [], "b/cart/1": []}
    async with store_factory() as store:
        for i in range(40):
            doc = list(expected)[i % 3] if i % 5 else "a/cart/1"
            update = f"{doc}:{i}".encode()
            expected[doc].append((await store.append(doc, update), update))
        for doc, updates in expected.items():
            assert await store.load(doc) == StoredDoc(updates=updates)


async def test_unknown_document_loads_empty(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        await store.append("t/cart/known", b"x")
        assert await store.load("t/cart/unknown") == StoredDoc()
        assert (await store.load("t/cart/unknown")).last_seq == 0


async def test_bytes_are_stored_untouched(store_factory: StoreFactory) -> None:
    rng = random.Random(1234)
    blobs = [b"", b"\x00", b"\x00" * 17, bytes(range(256)), os.urandom(65_536)]
    blobs += [rng.randbytes(rng.randrange(1, 2_000)) for _ in range(50)]
    async with store_factory() as store:
        for blob in blobs:
            await store.append("t/stock/bytes", blob)
        assert [blob for _, blob in (await store.load("t/stock/bytes")).updates] == blobs
    async with store_factory() as store:
        assert [blob for _, blob in (await store.load("t/stock/bytes")).updates] == blobs


async def test_everything_survives_close_and_reopen(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        first = [await store.append("t/cart/1", f"u{i}".encode()) for i in range(10)]
        await store.compact("t/cart/1", b"snapshot", first[5])
        await store.append("t/cart/2", b"other")
        before = {doc: await store.load(doc) for doc in await store.documents()}
    async with store_factory() as store:
        assert await store.documents() == ["t/cart/1", "t/cart/2"]
        for doc, stored in before.items():
            assert await store.load(doc) == stored
        later = await store.append("t/cart/1", b"after reopen")
    assert later > max(s.last_seq for s in before.values())


async def test_concurrent_appends_all_land_once_and_share_commits(store_factory: StoreFactory) -> None:
    tasks, per_task = 50, 10
    acked: dict[int, tuple[str, bytes]] = {}

    async def appender(store: Any, task: int) -> None:
        for i in range(per_task):
            doc = f"t/stock/{task % 7}"
            update = f"{task}:{i}".encode()
            seq = await store.append(doc, update)
            assert seq not in acked
            acked[seq] = (doc, update)

    async with store_factory() as store:
        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                for task in range(tasks):
                    tg.start_soon(appender, store, task)
        assert len(acked) == tasks * per_task
        assert store.committed_updates == tasks * per_task
        assert store.commits < tasks * per_task, "concurrent appends should share transactions"
        for doc in {doc for doc, _ in acked.values()}:
            stored = await store.load(doc)
            mine = sorted((seq, update) for seq, (d, update) in acked.items() if d == doc)
            assert stored.updates == mine


async def test_compaction_replaces_folded_rows_by_the_snapshot_and_keeps_the_tail(
    store_factory: StoreFactory,
) -> None:
    async with store_factory() as store:
        seqs = [await store.append("t/cart/1", f"u{i}".encode()) for i in range(6)]
        other = await store.append("t/cart/2", b"untouched")
        await store.compact("t/cart/1", b"snap-0-3", seqs[3])
        stored = await store.load("t/cart/1")
        assert stored.snapshot == b"snap-0-3"
        assert stored.snapshot_seq == seqs[3]
        assert stored.updates == [(seqs[4], b"u4"), (seqs[5], b"u5")]
        assert stored.last_seq == seqs[5]
        assert await store.load("t/cart/2") == StoredDoc(updates=[(other, b"untouched")])


async def test_updates_after_pages_one_documents_rows_and_is_none_once_compaction_folded_them(
    store_factory: StoreFactory,
) -> None:
    async with store_factory() as store:
        seqs = []
        for i in range(6):
            seqs.append(await store.append("t/cart/1", f"u{i}".encode()))
            await store.append("t/cart/2", f"other{i}".encode())
        assert await store.updates_after("t/cart/1", 0, 100) == [(s, f"u{i}".encode()) for i, s in enumerate(seqs)]
        assert await store.updates_after("t/cart/1", seqs[1], 2) == [(seqs[2], b"u2"), (seqs[3], b"u3")]
        assert await store.updates_after("t/cart/1", seqs[5], 10) == []
        assert await store.updates_after("t/cart/unknown", 0, 10) == []
        await store.compact("t/cart/1", b"snap-0-3", seqs[3])
        # Rows after the snapshot are still there; rows it folded are not, and that is said.
        assert await store.updates_after("t/cart/1", seqs[3], 10) == [(seqs[4], b"u4"), (seqs[5], b"u5")]
        assert await store.updates_after("t/cart/1", seqs[4], 10) == [(seqs[5], b"u5")]
        assert await store.updates_after("t/cart/1", seqs[2], 10) is None
        assert await store.updates_after("t/cart/1", 0, 10) is None
        with pytest.raises(ValueError):
            await store.updates_after("t/cart/1", 0, 0)


async def test_compaction_is_idempotent_and_ignores_an_older_snapshot(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        seqs = [await store.append("t/cart/1", f"u{i}".encode()) for i in range(6)]
        await store.compact("t/cart/1", b"snap-through-4", seqs[4])
        after_first = await store.load("t/cart/1")
        await store.compact("t/cart/1", b"snap-through-4", seqs[4])
        assert await store.load("t/cart/1") == after_first
        await store.compact("t/cart/1", b"older", seqs[2])
        assert await store.load("t/cart/1") == after_first
        await store.compact("t/cart/1", b"same seq, other bytes", seqs[4])
        assert await store.load("t/cart/1") == after_first
        await store.compact("t/cart/1", b"newer", seqs[5])
        assert await store.load("t/cart/1") == StoredDoc(snapshot=b"newer", snapshot_seq=seqs[5])


async def test_compaction_beyond_the_last_assigned_seq_is_refused(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        seq = await store.append("t/cart/1", b"u")
        with pytest.raises(ValueError):
            await store.compact("t/cart/1", b"claims the future", seq + 1)
        with pytest.raises(ValueError):
            await store.compact("t/cart/1", b"nothing", 0)
        assert await store.load("t/cart/1") == StoredDoc(updates=[(seq, b"u")])


async def test_snapshot_plus_tail_rebuilds_the_same_document(store_factory: StoreFactory) -> None:
    author: pycrdt.Doc[Any] = pycrdt.Doc()
    updates = [map_update(author, f"k{i % 13}", i) for i in range(60)]
    async with store_factory() as store:
        seqs = [await store.append("t/cart/crdt", update) for update in updates]
        cut = seqs[39]
        folded = rebuild(StoredDoc(updates=[(s, u) for s, u in zip(seqs, updates) if s <= cut]))
        await store.compact("t/cart/crdt", folded.get_update(), cut)
        stored = await store.load("t/cart/crdt")
        assert len(stored.updates) == 20
        assert rebuild(stored).get("m", type=pycrdt.Map).to_py() == author.get("m", type=pycrdt.Map).to_py()
        assert rebuild(stored).get_state() == author.get_state()


async def test_seqs_are_never_reused_after_compaction_removes_the_newest_rows(
    store_factory: StoreFactory,
) -> None:
    async with store_factory() as store:
        seqs = [await store.append("t/cart/1", b"u") for _ in range(3)]
        await store.compact("t/cart/1", b"snap", seqs[-1])  # deletes the newest rows of the store
    async with store_factory() as store:
        assert await store.load("t/cart/1") == StoredDoc(snapshot=b"snap", snapshot_seq=seqs[-1])
        assert await store.append("t/cart/2", b"next") > seqs[-1]


async def test_documents_lists_every_document_sorted(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        assert await store.documents() == []
        for doc in ["b/cart/2", "a/stock/9", "b/cart/1", "a/stock/9"]:
            seq = await store.append(doc, b"x")
        await store.compact("b/cart/1", b"snap", seq)  # only a snapshot left for b/cart/1
        assert await store.documents() == ["a/stock/9", "b/cart/1", "b/cart/2"]


async def test_documents_pages_through_one_prefix(store_factory: StoreFactory) -> None:
    """A tenant's orders, a page at a time: the prefix is literal (``_`` and ``%`` match only
    themselves) and the order is by code point, on every store."""
    names = ["t_x/order/2", "t/order/b", "t/order/A", "t/order/a_1", "t/order/a%", "t/cart/1", "t/orders/1",
             "u/order/1", "t/order/Z"]
    async with store_factory() as store:
        for doc in names:
            await store.append(doc, b"x")
        expected = sorted(name for name in names if name.startswith("t/order/"))
        assert await store.documents("t/order/") == expected
        pages, after = [], ""
        while page := await store.documents("t/order/", after=after, limit=2):
            pages.append(page)
            after = page[-1]
        assert pages == [expected[i:i + 2] for i in range(0, len(expected), 2)]
        assert await store.documents("t_x/") == ["t_x/order/2"]
        assert await store.documents("nobody/") == []


async def test_check_passes_when_open_and_fails_after_close(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        await store.check()
        await store.append("t/cart/1", b"x")
        await store.check()
    with pytest.raises(StoreUnavailable):
        await store.check()


async def test_every_call_after_close_raises_store_unavailable(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        seq = await store.append("t/cart/1", b"x")
    with pytest.raises(StoreUnavailable):
        await store.append("t/cart/1", b"y")
    with pytest.raises(StoreUnavailable):
        await store.load("t/cart/1")
    with pytest.raises(StoreUnavailable):
        await store.compact("t/cart/1", b"snap", seq)
    with pytest.raises(StoreUnavailable):
        await store.documents()


async def _append_recording(store: Any, i: int, acked: dict[int, int], refused: list[int]) -> None:
    try:
        acked[i] = await store.append("t/cart/queued", i.to_bytes(4, "big"))
    except StoreUnavailable:
        refused.append(i)  # reached the store only after it began closing: never accepted


async def test_closing_commits_the_appends_still_queued(store_factory: StoreFactory) -> None:
    acked: dict[int, int] = {}
    refused: list[int] = []
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg, store_factory() as store:
            for i in range(300):
                tg.start_soon(_append_recording, store, i, acked, refused)
            for _ in range(3):
                await anyio.lowlevel.checkpoint()  # let the appenders queue up, not commit
            committed_before_close = store.committed_updates
    assert len(acked) + len(refused) == 300
    assert len(acked) > committed_before_close, "some appends should still have been queued at close"
    async with store_factory() as store:
        stored = await store.load("t/cart/queued")
    assert sorted(stored.updates) == sorted((seq, i.to_bytes(4, "big")) for i, seq in acked.items())


async def test_cancelling_the_owner_still_commits_the_appends_already_queued(
    store_factory: StoreFactory,
) -> None:
    acked: dict[int, int] = {}
    refused: list[int] = []
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as owner:
                async with store_factory() as store:
                    for i in range(300):
                        tg.start_soon(_append_recording, store, i, acked, refused)
                    for _ in range(3):
                        await anyio.lowlevel.checkpoint()
                    committed_before_close = store.committed_updates
                    owner.cancel()
                    await anyio.sleep_forever()
    assert owner.cancelled_caught
    assert len(acked) + len(refused) == 300
    assert len(acked) > committed_before_close, "some appends should still have been queued at close"
    async with store_factory() as store:
        stored = await store.load("t/cart/queued")
    assert sorted(stored.updates) == sorted((seq, i.to_bytes(4, "big")) for i, seq in acked.items())


# -- the change feed, idempotent responses and prices ------------------------------------


async def test_every_append_adds_its_change_in_the_same_order_and_per_tenant(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        appended = []
        for i in range(12):
            doc = ("acme/cart/c1", "acme/stock/l1", "globex/cart/c1")[i % 3]
            action = "cart.add_item" if i % 2 else None
            appended.append((await store.append(doc, bytes([i]), action=action), doc, action))
        acme = await store.changes_since("acme", 0, 100)
        assert [(c.seq, c.doc, c.action) for c in acme] == [a for a in appended if a[1].startswith("acme/")]
        assert [c.tenant for c in acme] == ["acme"] * len(acme)
        assert [c.seq for c in await store.changes_since("globex", 0, 100)] == [
            seq for seq, doc, _ in appended if doc.startswith("globex/")
        ]
        assert await store.changes_since("initech", 0, 100) == []
        assert await store.head() == appended[-1][0]
        # Paging: after a seq, bounded by the limit.
        assert [c.seq for c in await store.changes_since("acme", acme[2].seq, 3)] == [c.seq for c in acme[3:6]]


async def test_changes_outlive_compaction_and_survive_reopen(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        seqs = [await store.append("acme/cart/c1", bytes([i])) for i in range(5)]
        await store.compact("acme/cart/c1", b"snapshot", seqs[-1])
    async with store_factory() as store:
        assert [c.seq for c in await store.changes_since("acme", 0, 100)] == seqs
        assert await store.feed_floor() == 0


async def test_prune_removes_old_changes_by_seq_and_raises_the_floor(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        old = [await store.append("acme/cart/c1", bytes([i])) for i in range(4)]
        cutoff = time.time() + 0.001
        await anyio.sleep(0.01)
        new = [await store.append("acme/cart/c1", bytes([i])) for i in range(3)]
        pruned = await store.prune_changes(cutoff)
        assert pruned == len(old)
        assert await store.feed_floor() == old[-1]
        assert [c.seq for c in await store.changes_since("acme", 0, 100)] == new
        # Pruning again with an older cutoff never lowers the floor.
        assert await store.prune_changes(0) == 0 and await store.prune_receipts(0) == 0
        assert await store.feed_floor() == old[-1]
        # The log itself is untouched: pruning is about the feed only.
        assert [seq for seq, _ in (await store.load("acme/cart/c1")).updates] == old + new


async def test_a_receipt_commits_with_its_update_and_the_first_one_is_kept_as_its_bytes(
    store_factory: StoreFactory,
) -> None:
    from syncline.server.store import Receipt

    first = Receipt("acme", "key-1", "fp-a", b"\x00opaque\xff" * 50, 1000.0)
    second = Receipt("acme", "key-1", "fp-b", b"another", 2000.0)
    async with store_factory() as store:
        assert await store.recall("acme", "key-1") is None
        await store.append("acme/cart/c1", b"\x01", receipt=first)
        assert await store.recall("acme", "key-1") == first
        await store.append("acme/cart/c1", b"\x02", receipt=second)  # same key: the first stays
        assert await store.remember(second) == first
        assert await store.recall("globex", "key-1") is None  # keys are per tenant
        other = Receipt("globex", "key-1", "fp-c", b"{}", 3000.0)
        assert await store.remember(other) == other
    async with store_factory() as store:
        assert await store.recall("acme", "key-1") == first
        assert await store.prune_changes(0) == 0 and await store.prune_receipts(2500.0) == 1
        assert await store.recall("acme", "key-1") is None
        assert await store.recall("globex", "key-1") == other


async def test_an_idempotency_key_is_claimed_by_one_holder_until_released_answered_or_expired(
    store_factory: StoreFactory,
) -> None:
    from syncline.server.store import Claim, Receipt

    async with store_factory() as store:
        assert await store.claim("acme", "k", "fp-a", "h1", expire_after=60) is None
        held = await store.claim("acme", "k", "fp-b", "h2", expire_after=60)
        assert isinstance(held, Claim) and (held.tenant, held.key, held.fingerprint) == ("acme", "k", "fp-a")
        assert abs(held.created_at - time.time()) < 60
        assert await store.claim("globex", "k", "fp-b", "h2", expire_after=60) is None  # keys are per tenant
        await store.release("acme", "k", "h2")  # not its claim: nothing happens
        assert isinstance(await store.claim("acme", "k", "fp-a", "h3", expire_after=60), Claim)
        await store.release("acme", "k", "h1")
        assert await store.claim("acme", "k", "fp-c", "h3", expire_after=60) is None
        # Once the holder's response is kept, a claimer gets the response and holds nothing.
        answer = Receipt("acme", "k", "fp-c", b"{}", time.time())
        await store.append("acme/cart/c1", b"\x01", receipt=answer)
        assert await store.claim("acme", "k", "fp-c", "h4", expire_after=60) == answer
        await store.release("acme", "k", "h3")
        assert await store.claim("acme", "k", "fp-c", "h5", expire_after=60) == answer
        assert await store.claim("acme", "k", "fp-c", "h6", expire_after=60) == answer
        # A claim older than expire_after is taken over; its late release leaves the new one.
        assert await store.claim("acme", "x", "fp-a", "h1", expire_after=60) is None
        await anyio.sleep(0.01)
        assert await store.claim("acme", "x", "fp-b", "h2", expire_after=0.005) is None
        await store.release("acme", "x", "h1")
        held = await store.claim("acme", "x", "fp-c", "h3", expire_after=60)
        assert isinstance(held, Claim) and held.fingerprint == "fp-b"


async def test_each_opening_starts_a_feed_epoch_at_the_next_seq(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        (first,) = await store.epochs()
        assert first[0] == 1 and len(first[1]) == 16 and int(first[1], 16) >= 0
        seqs = [await store.append("acme/cart/c1", bytes([i])) for i in range(3)]
    async with store_factory() as store:
        epochs = await store.epochs()
        assert epochs[0] == first and epochs[1][0] == seqs[-1] + 1 and epochs[1][1] != first[1]
    async with store_factory() as store:  # nothing written since: the epoch that named no seq is replaced
        again = await store.epochs()
        assert again[0] == first and again[1][0] == epochs[1][0] and again[1][1] != epochs[1][1]
        assert len(again) == 2


async def test_prices_are_per_tenant_replaced_or_merged(store_factory: StoreFactory) -> None:
    from syncline.server.store import Price

    async with store_factory() as store:
        assert await store.put_prices("acme", {"tee": Price(1299, "EUR"), "mug": Price(450, "EUR")},
                                      replace=True) == 2
        assert await store.put_prices("globex", {"tee": Price(10, "USD")}, replace=True) == 1
        assert await store.prices("acme", ["tee", "cap"]) == {"tee": Price(1299, "EUR")}
        await store.put_prices("acme", {"cap": Price(999, "EUR")}, replace=False)
        assert await store.catalog("acme") == {"tee": Price(1299, "EUR"), "mug": Price(450, "EUR"),
                                               "cap": Price(999, "EUR")}
        await store.put_prices("acme", {"cap": Price(1000, "EUR")}, replace=True)
    async with store_factory() as store:
        assert await store.catalog("acme") == {"cap": Price(1000, "EUR")}
        assert await store.catalog("globex") == {"tee": Price(10, "USD")}
        many = [f"p{i}" for i in range(1200)]  # more than one query's worth of parameters
        await store.put_prices("acme", {p: Price(i, "EUR") for i, p in enumerate(many)}, replace=True)
        assert len(await store.prices("acme", many)) == 1200


async def test_a_client_is_bound_to_its_first_claimant_for_good(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        assert await store.bind_clients("t/cart/1", "sub:ann", claim=[7, 8], check=[]) == {7: "sub:ann", 8: "sub:ann"}
        assert await store.bind_clients("t/cart/1", "sub:bob", claim=[8, 9], check=[7, 10]) == {
            7: "sub:ann", 8: "sub:ann", 9: "sub:bob"}
        assert await store.bind_clients("t/cart/2", "sub:bob", claim=[7], check=[]) == {7: "sub:bob"}
        assert await store.bind_clients("t/cart/1", "sub:eve", claim=[], check=[7, 9, 11]) == {
            7: "sub:ann", 9: "sub:bob"}
    async with store_factory() as store:
        assert await store.bind_clients("t/cart/1", "sub:eve", claim=[7], check=[9]) == {7: "sub:ann", 9: "sub:bob"}


async def test_of_concurrent_claims_of_one_client_exactly_one_wins(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        seen: list[dict[int, str]] = []

        async def claim(owner: str) -> None:
            seen.append(await store.bind_clients("t/cart/1", owner, claim=[42], check=[]))

        async with anyio.create_task_group() as tg:
            for index in range(8):
                tg.start_soon(claim, f"sub:{index}")
        winners = {result[42] for result in seen}
        assert len(seen) == 8 and len(winners) == 1


async def test_binding_and_checking_more_clients_than_one_statement_takes(store_factory: StoreFactory) -> None:
    clients = list(range(1, 1_201))
    async with store_factory() as store:
        assert await store.bind_clients("t/cart/1", "sub:ann", claim=clients[:700], check=clients[700:]) == {
            client: "sub:ann" for client in clients[:700]}
        assert await store.bind_clients("t/cart/1", "sub:bob", claim=[], check=clients) == {
            client: "sub:ann" for client in clients[:700]}


async def test_an_append_binds_its_claim_in_its_own_commit(store_factory: StoreFactory) -> None:
    till: pycrdt.Doc[Any] = pycrdt.Doc(client_id=7)
    async with store_factory() as store:
        first = await store.append("t/cart/1", map_update(till, "a", 1), binding=Binding("sub:ann", (7,), (9,)))
        second = await store.append("t/cart/1", map_update(till, "b", 2), binding=Binding("sub:ann", (7,)))
        assert second > first
    async with store_factory() as store:
        assert await store.bind_clients("t/cart/1", "sub:bob", claim=[7, 9], check=[]) == {7: "sub:ann", 9: "sub:bob"}
        assert [seq for seq, _ in (await store.load("t/cart/1")).updates] == [first, second]


async def test_an_append_whose_binding_finds_another_owner_stores_nothing(store_factory: StoreFactory) -> None:
    ann: pycrdt.Doc[Any] = pycrdt.Doc(client_id=7)
    async with store_factory() as store:
        first = await store.append("t/cart/1", map_update(ann, "a", 1), binding=Binding("sub:ann", (7,)))
        with pytest.raises(ClientsBound) as refused:
            await store.append("t/cart/1", map_update(ann, "b", 2), binding=Binding("sub:bob", (8, 7)))
        assert refused.value.owners == {7: "sub:ann", 8: "sub:bob"}  # 8 was unbound: bound all the same
        with pytest.raises(ClientsBound) as checked:
            await store.append("t/cart/1", map_update(ann, "c", 3), binding=Binding("sub:eve", (), (7,)))
        assert checked.value.owners == {7: "sub:ann"}
        later = await store.append("t/cart/1", map_update(pycrdt.Doc(client_id=8), "d", 4),
                                   binding=Binding("sub:bob", (8,)))
    async with store_factory() as store:
        stored = await store.load("t/cart/1")
        assert [seq for seq, _ in stored.updates] == [first, later]
        assert rebuild(stored).get("m", type=pycrdt.Map).to_py() == {"a": 1, "d": 4}
        assert await store.bind_clients("t/cart/1", "sub:x", claim=[], check=[7, 8]) == {7: "sub:ann", 8: "sub:bob"}


async def test_of_concurrent_appends_claiming_one_client_exactly_one_is_stored(store_factory: StoreFactory) -> None:
    outcomes: dict[str, int | ClientsBound] = {}
    async with store_factory() as store:

        async def write(owner: str) -> None:
            update = map_update(pycrdt.Doc(client_id=42), owner, 1)
            try:
                outcomes[owner] = await store.append("t/cart/1", update, binding=Binding(owner, (42,)))
            except ClientsBound as exc:
                outcomes[owner] = exc

        async with anyio.create_task_group() as tg:
            for index in range(8):
                tg.start_soon(write, f"sub:{index}")
        stored = [owner for owner, outcome in outcomes.items() if isinstance(outcome, int)]
        assert len(outcomes) == 8 and len(stored) == 1
        assert all(outcome.owners == {42: stored[0]} for outcome in outcomes.values() if isinstance(outcome, ClientsBound))
        assert [seq for seq, _ in (await store.load("t/cart/1")).updates] == [outcomes[stored[0]]]


async def test_touch_keeps_the_latest_access_of_each_document_and_marks_guests(store_factory: StoreFactory) -> None:
    async with store_factory() as store:
        await store.touch({"t/cart/a": 100.0, "t/cart/b": 50.0})
        await store.touch({"t/cart/a": 90.0, "t/cart/g": 10.0})  # an earlier time changes nothing
        await store.touch({"t/cart/g": 20.0}, guest=True)
        await store.touch({"t/cart/g": 30.0})  # a later plain touch keeps the guest mark
    async with store_factory() as store:
        accessed = await store.accessed(["t/cart/a", "t/cart/b", "t/cart/g", "t/cart/none"])
    assert {doc: (a.last_accessed_at, a.guest) for doc, a in accessed.items()} == {
        "t/cart/a": (100.0, False), "t/cart/b": (50.0, False), "t/cart/g": (30.0, True)}


async def test_idle_guests_lists_only_guest_documents_idle_since_before_the_time(
    store_factory: StoreFactory,
) -> None:
    async with store_factory() as store:
        await store.touch({"t/cart/g1": 10.0, "t/cart/g2": 5.0, "t/cart/g3": 50.0}, guest=True)
        await store.touch({"t/cart/user": 1.0})
        assert await store.idle_guests(20.0, 10) == ["t/cart/g2", "t/cart/g1"]
        assert await store.idle_guests(20.0, 1) == ["t/cart/g2"]
        assert await store.idle_guests(1.0, 10) == []


async def test_delete_document_removes_its_log_snapshot_owners_and_access_and_nothing_else(
    store_factory: StoreFactory,
) -> None:
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    other: pycrdt.Doc[Any] = pycrdt.Doc()
    async with store_factory() as store:
        first = await store.append("t/cart/gone", map_update(doc, "a", 1))
        await store.compact("t/cart/gone", doc.get_update(), first)
        await store.append("t/cart/gone", map_update(doc, "b", 2))
        await store.append("t/cart/kept", map_update(other, "c", 3))
        await store.bind_clients("t/cart/gone", "sub:x", claim=[1], check=[])
        await store.touch({"t/cart/gone": 1.0, "t/cart/kept": 1.0}, guest=True)
        await store.delete_document("t/cart/gone")
        assert await store.load("t/cart/gone") == StoredDoc()
        assert await store.documents("t/") == ["t/cart/kept"]
        assert await store.bind_clients("t/cart/gone", "sub:y", claim=[1], check=[]) == {1: "sub:y"}
        assert list(await store.accessed(["t/cart/gone", "t/cart/kept"])) == ["t/cart/kept"]
        assert rebuild(await store.load("t/cart/kept")).get("m", type=pycrdt.Map).to_py() == {"c": 3}
        seq = await store.append("t/cart/gone", map_update(pycrdt.Doc(), "d", 4))
        assert seq > first  # seqs never go back
