"""What only the SQLite store promises: its file format, its pragmas, and how it fails.

Behaviour every store shares is in ``test_store_conformance.py``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from syncline.server.store import Binding, ClientsBound, StoredDoc, StoreUnavailable
from syncline.server.store.sqlite import SCHEMA_VERSION, SQLiteStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiosqlite runs on asyncio


def pragma(path: Path, name: str) -> object:
    with sqlite3.connect(path) as db:
        return db.execute(f"PRAGMA {name}").fetchone()[0]


def smash(path: Path, *, offset: int, length: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * length)


async def test_opening_creates_a_wal_file_with_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "store.db"
    async with SQLiteStore(path) as store:
        await store.append("t/cart/1", b"x")
        assert pragma(path, "journal_mode") == "wal"
        assert pragma(path, "user_version") == SCHEMA_VERSION
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        ddl = db.execute("SELECT sql FROM sqlite_master WHERE name = 'updates'").fetchone()[0]
        indexes = [row[1] for row in db.execute("PRAGMA index_list(updates)")]
    assert {"updates", "snapshots", "meta"} <= tables
    assert "AUTOINCREMENT" in ddl
    assert "updates_doc_seq" in indexes


@pytest.mark.parametrize("mode", ["FULL", "NORMAL", "normal"])
async def test_synchronous_mode_is_applied_to_the_writer(tmp_path: Path, mode: str) -> None:
    levels = {"NORMAL": 1, "FULL": 2}
    async with SQLiteStore(tmp_path / "s.db", synchronous=mode) as store:
        assert store._writer is not None
        rows = await anyio.to_thread.run_sync(lambda: store._writer.execute("PRAGMA synchronous").fetchall())
        assert rows[0][0] == levels[mode.upper()]


def test_bad_arguments_are_refused_before_opening(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore(tmp_path / "s.db", synchronous="OFF; DROP TABLE updates")
    with pytest.raises(ValueError, match="max_batch"):
        SQLiteStore(tmp_path / "s.db", max_batch=0)
    assert not (tmp_path / "s.db").exists()


async def test_a_corrupt_file_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with SQLiteStore(path) as store, anyio.create_task_group() as tg:
        for i in range(300):
            tg.start_soon(store.append, f"t/cart/{i % 5}", bytes([i % 256]) * 1_000)
    assert pragma(path, "page_size") == 4096
    smash(path, offset=4096 * 2, length=4096 * 3)  # a few b-tree pages past the header page
    with pytest.raises(StoreUnavailable, match="corrupt|malformed"):
        async with SQLiteStore(path):
            pass


async def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailable, match="not a database"):
        async with SQLiteStore(path):
            pass


async def test_a_foreign_sqlite_file_is_not_adopted(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE updates (path TEXT, yupdate BLOB, timestamp REAL)")
    with pytest.raises(StoreUnavailable, match="not a Syncline store"):
        async with SQLiteStore(path):
            pass
    assert pragma(path, "user_version") == 0


async def test_a_file_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with SQLiteStore(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreUnavailable, match="schema version"):
        async with SQLiteStore(path):
            pass


async def test_a_fault_while_settling_a_commit_fails_its_waiters_instead_of_leaving_them_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug of ours between the commit and its waiters (here: one outcome too many for the
    batch's other writes) must not leave a write waiting for ever."""
    original = SQLiteStore._commit_sync

    def one_outcome_too_many(self: SQLiteStore, db: sqlite3.Connection, batch: list[Any]) -> tuple[int, list[Any]]:
        next_seq, outcomes = original(self, db, batch)
        return next_seq, [*outcomes, None]

    async with SQLiteStore(tmp_path / "s.db") as store:
        monkeypatch.setattr(SQLiteStore, "_commit_sync", one_outcome_too_many)
        with anyio.fail_after(5), pytest.raises(StoreUnavailable, match="settling the commit failed"):
            await store.append("t/cart/1", b"one")
        assert "settling a commit of 1 writes" in caplog.text
        monkeypatch.setattr(SQLiteStore, "_commit_sync", original)
        assert await store.append("t/cart/1", b"two") == 2  # the store goes on


async def test_on_commit_reports_every_batch(tmp_path: Path) -> None:
    batches: list[tuple[int, float]] = []
    async with SQLiteStore(tmp_path / "s.db") as store:
        store.on_commit = lambda size, seconds: batches.append((size, seconds))
        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(store.append, "t/cart/1", bytes([i]))
    assert sum(size for size, _ in batches) == 100 == store.committed_updates
    assert len(batches) == store.commits
    assert all(seconds >= 0 for _, seconds in batches)


async def test_a_failing_on_commit_hook_does_not_fail_the_append(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_hook(size: int, seconds: float) -> None:
        raise RuntimeError("metrics are down")

    async with SQLiteStore(tmp_path / "s.db") as store:
        store.on_commit = broken_hook
        seq = await store.append("t/cart/1", b"x")
        assert (await store.load("t/cart/1")).updates == [(seq, b"x")]
    assert "on_commit hook" in caplog.text


async def test_max_batch_bounds_each_transaction(tmp_path: Path) -> None:
    sizes: list[int] = []
    async with SQLiteStore(tmp_path / "s.db", max_batch=8) as store:
        store.on_commit = lambda size, seconds: sizes.append(size)
        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(store.append, "t/cart/1", bytes([i]))
    assert sum(sizes) == 200
    assert max(sizes) <= 8
    assert max(sizes) > 1


@contextlib.contextmanager
def writer_lock_held(path: Path, poison: str) -> Iterator[sqlite3.Connection]:
    """A second connection that adds a trigger refusing the inserts ``poison`` names
    (``BEFORE INSERT ON table WHEN ...``) and holds the write lock: the store's writer waits
    with its first request while the next ones queue up as one batch, until ``ROLLBACK``."""
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute(f"CREATE TRIGGER reject_poison {poison} BEGIN SELECT RAISE(ABORT, 'poisoned'); END")
        blocker.execute("BEGIN IMMEDIATE")  # the writer's BEGIN IMMEDIATE now waits
        yield blocker
    finally:
        blocker.close()


async def taken(store: SQLiteStore) -> None:
    """Wait until the writer thread has taken every queued write into its transaction."""
    with anyio.fail_after(5):
        while store.queued_writes:
            await anyio.sleep(0.001)


async def queued(store: SQLiteStore, count: int) -> None:
    """Wait until ``count`` writes wait in the queue (the thread is held in its transaction)."""
    await anyio.wait_all_tasks_blocked()
    assert store.queued_writes == count


async def test_a_failed_commit_fails_its_whole_batch_and_stores_none_of_it(tmp_path: Path) -> None:
    """Hold the write lock from outside so the next appends queue up as one batch, one of them
    rejected by a trigger: every waiter of that batch gets StoreUnavailable and no row lands."""
    path = tmp_path / "s.db"
    outcomes: dict[bytes, int | StoreUnavailable] = {}

    async def append(store: SQLiteStore, update: bytes) -> None:
        try:
            outcomes[update] = await store.append("t/cart/1", update)
        except StoreUnavailable as exc:
            outcomes[update] = exc

    async with SQLiteStore(path) as store:
        poison = "BEFORE INSERT ON updates WHEN NEW.blob = X'DEAD'"
        with writer_lock_held(path, poison) as blocker, anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(append, store, b"first")
                await anyio.wait_all_tasks_blocked()
                await taken(store)  # the writer holds "first", waiting for the lock
                for update in (b"good-1", b"good-2", b"\xde\xad", b"good-3"):
                    tg.start_soon(append, store, update)
                await queued(store, 4)  # these four are queued behind it
                blocker.execute("ROLLBACK")
        assert isinstance(outcomes[b"first"], int)
        for update in (b"good-1", b"good-2", b"\xde\xad", b"good-3"):
            error = outcomes[update]
            assert isinstance(error, StoreUnavailable), update
            assert isinstance(error.__cause__, sqlite3.IntegrityError)
        assert store.commits == 1
        assert await store.load("t/cart/1") == StoredDoc(updates=[(outcomes[b"first"], b"first")])
        # The store recovers: the next append commits.
        seq = await store.append("t/cart/1", b"after")
        assert seq > outcomes[b"first"]
        await store.check()


async def test_other_writes_queued_among_appends_share_their_commit_and_fail_alone(tmp_path: Path) -> None:
    """Client bindings queued among appends commit in the appends' transaction (one COMMIT for
    the burst); one refused by the database is undone alone, and every other write of that
    transaction stands."""
    path = tmp_path / "s.db"
    outcomes: dict[str, object] = {}

    async def run(name: str, write: Callable[[], Awaitable[object]]) -> None:
        try:
            outcomes[name] = await write()
        except StoreUnavailable as exc:
            outcomes[name] = exc

    async with SQLiteStore(path) as store:
        statements: list[str] = []
        assert store._writer is not None
        store._writer.set_trace_callback(statements.append)
        with writer_lock_held(path, "BEFORE INSERT ON client_owners WHEN NEW.owner = 'poison'") as blocker, \
                anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run, "first", lambda: store.append("t/cart/1", b"first"))
                await anyio.wait_all_tasks_blocked()
                await taken(store)  # the writer holds "first", waiting for the lock
                tg.start_soon(run, "bind-a", lambda: store.bind_clients("t/cart/1", "alice", claim=[1, 2], check=[]))
                tg.start_soon(run, "good-1", lambda: store.append("t/cart/1", b"good-1"))
                tg.start_soon(run, "poison", lambda: store.bind_clients("t/cart/1", "poison", claim=[3], check=[]))
                tg.start_soon(run, "good-2", lambda: store.append("t/cart/2", b"good-2"))
                tg.start_soon(run, "bind-b", lambda: store.bind_clients("t/cart/2", "bob", claim=[4], check=[1]))
                await queued(store, 5)  # these five are queued behind it
                statements.clear()
                blocker.execute("ROLLBACK")
        assert [s for s in statements if s in ("BEGIN IMMEDIATE", "COMMIT")] == ["COMMIT", "BEGIN IMMEDIATE", "COMMIT"]
        assert outcomes["bind-a"] == {1: "alice", 2: "alice"}
        assert outcomes["bind-b"] == {4: "bob"}  # client 1 is bound in t/cart/1, not in t/cart/2
        poisoned = outcomes["poison"]
        assert isinstance(poisoned, StoreUnavailable)
        assert isinstance(poisoned.__cause__, sqlite3.IntegrityError)
        first, good_1, good_2 = outcomes["first"], outcomes["good-1"], outcomes["good-2"]
        assert isinstance(first, int) and good_1 == first + 1 and good_2 == first + 2
        assert store.commits == 2
        assert await store.load("t/cart/1") == StoredDoc(updates=[(first, b"first"), (good_1, b"good-1")])
        assert await store.load("t/cart/2") == StoredDoc(updates=[(good_2, b"good-2")])
        assert await store.bind_clients("t/cart/1", "carol", claim=[], check=[1, 2, 3]) == {1: "alice", 2: "alice"}


async def test_appends_carrying_bindings_share_the_commit_of_plain_ones_and_a_refused_one_takes_no_seq(
    tmp_path: Path,
) -> None:
    """Appends with a binding queued among plain appends commit in the same transaction; one
    whose binding finds its client bound to another writer stores nothing, and the appends
    after it still get consecutive seqs."""
    path = tmp_path / "s.db"
    outcomes: dict[str, object] = {}

    async def run(name: str, update: bytes, binding: Binding | None = None) -> None:
        try:
            outcomes[name] = await store.append("t/cart/1", update, binding=binding)
        except ClientsBound as exc:
            outcomes[name] = exc

    async with SQLiteStore(path) as store:
        with writer_lock_held(path, "BEFORE INSERT ON updates WHEN 0") as blocker, anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run, "first", b"first", Binding("alice", (1,)))
                await anyio.wait_all_tasks_blocked()
                await taken(store)  # the writer holds "first", waiting for the lock
                tg.start_soon(run, "plain-1", b"plain-1")
                tg.start_soon(run, "bob-on-1", b"bob-on-1", Binding("bob", (2,), (1,)))
                tg.start_soon(run, "plain-2", b"plain-2")
                tg.start_soon(run, "alice-on-3", b"alice-on-3", Binding("alice", (3,), (1,)))
                tg.start_soon(run, "bob-on-3", b"bob-on-3", Binding("bob", (3,)))
                await queued(store, 5)  # these five are queued behind it
                blocker.execute("ROLLBACK")
        first = outcomes["first"]
        assert isinstance(first, int)
        assert [outcomes[name] for name in ("plain-1", "plain-2", "alice-on-3")] == [first + 1, first + 2, first + 3]
        for name, owners in (("bob-on-1", {1: "alice", 2: "bob"}), ("bob-on-3", {3: "alice"})):
            refused = outcomes[name]
            assert isinstance(refused, ClientsBound) and refused.owners == owners
        assert store.commits == 2 and store.committed_updates == 4
        assert await store.load("t/cart/1") == StoredDoc(updates=[
            (first, b"first"), (first + 1, b"plain-1"), (first + 2, b"plain-2"), (first + 3, b"alice-on-3")])
        assert await store.append("t/cart/1", b"after") == first + 4


async def test_a_locked_database_makes_appends_and_check_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with SQLiteStore(path, busy_timeout=0.05) as store:
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with anyio.fail_after(10):
                with pytest.raises(StoreUnavailable, match="locked"):
                    await store.append("t/cart/1", b"x")
                with pytest.raises(StoreUnavailable, match="locked"):
                    await store.check()
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()
        await store.check()
        assert (await store.load("t/cart/1")).updates == []


async def test_a_store_opens_only_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    async with store:
        pass
    with pytest.raises(RuntimeError):
        async with store:
            pass


async def test_appending_before_opening_raises_store_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="new"):
        await SQLiteStore(tmp_path / "s.db").append("t/cart/1", b"x")


async def test_a_version_1_file_is_migrated_and_its_history_sits_below_the_feed_floor(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:  # the schema the first release wrote, with three updates
        db.execute("CREATE TABLE updates (seq INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL,"
                   " blob BLOB NOT NULL)")
        db.execute("CREATE INDEX updates_doc_seq ON updates (doc, seq)")
        db.execute("CREATE TABLE snapshots (doc TEXT PRIMARY KEY, seq INTEGER NOT NULL, blob BLOB NOT NULL)")
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value)")
        db.executemany("INSERT INTO updates (doc, blob) VALUES (?, ?)",
                       [("acme/cart/c1", b"\x01"), ("acme/cart/c1", b"\x02"), ("acme/stock/l1", b"\x03")])
        db.execute("PRAGMA user_version = 1")
    async with SQLiteStore(path) as store:
        assert pragma(path, "user_version") == SCHEMA_VERSION
        assert [first for first, _ in await store.epochs()] == [4]  # the feed's first epoch begins after them
        assert [blob for _, blob in (await store.load("acme/cart/c1")).updates] == [b"\x01", b"\x02"]
        assert await store.feed_floor() == 3  # older updates have no events: resuming below is a gap
        assert await store.changes_since("acme", 0, 10) == []
        seq = await store.append("acme/cart/c1", b"\x04", action="cart.add_item")
        assert seq == 4
        assert [(c.seq, c.action) for c in await store.changes_since("acme", 0, 10)] == [(4, "cart.add_item")]
        await store.touch({"acme/cart/c1": 5.0})  # the version 5 table is there
        assert (await store.accessed(["acme/cart/c1"]))["acme/cart/c1"].last_accessed_at == 5.0
