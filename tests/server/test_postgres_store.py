"""What only the PostgreSQL store promises: several nodes on one database, its schema, and how it fails.

Behaviour every store shares is in ``test_store_conformance.py``. Each test works in
its own schema of the test server (``harness/services.py``), which it drops afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.abc
import asyncpg
import pycrdt
import pytest

from syncline.server.store import Receipt, StoreUnavailable
from syncline.server.store.postgres import SCHEMA_VERSION, PostgresStore
from harness.services import drop_schema, fresh_schema_name, postgres_dsn

from .test_store_conformance import map_update, rebuild

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # asyncpg runs on asyncio


@pytest.fixture
def dsn() -> str:
    return postgres_dsn()


@pytest.fixture
def schema(dsn: str) -> Iterator[str]:
    name = fresh_schema_name()
    try:
        yield name
    finally:
        drop_schema(dsn, name)


async def sql(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    """One query on a connection of its own (the test's view of the database)."""
    con = await asyncpg.connect(dsn, timeout=5)
    try:
        return list(await con.fetch(query, *args))
    finally:
        await con.close()


# -- several nodes on one database ---------------------------------------------------------


async def test_two_nodes_get_unique_seqs_in_commit_order_and_a_tailer_misses_no_change(
    dsn: str, schema: str
) -> None:
    nodes, writers_per_node, per_writer = 2, 12, 25
    acked: dict[int, tuple[str, bytes]] = {}
    tailed: list[int] = []
    writing = True

    async def writer(store: PostgresStore, node: int, writer: int) -> None:
        previous = 0
        for i in range(per_writer):
            doc = f"acme/cart/{(writer + i) % 3}"  # both nodes write the same documents
            update = f"{node}:{writer}:{i}".encode()
            seq = await store.append(doc, update)
            assert seq > previous, "one writer's successive appends must get increasing seqs"
            assert seq not in acked, f"seq {seq} assigned twice"
            previous = seq
            acked[seq] = (doc, update)

    async def tailer(store: PostgresStore) -> None:
        # Resumes by "seq > last seen", as an SSE reader does: a row that commits after a
        # larger seq was seen would be skipped for ever.
        cursor = 0
        while True:
            last_round = not writing
            while page := await store.changes_since("acme", cursor, 50):
                assert all(c.seq > cursor for c in page)
                tailed.extend(c.seq for c in page)
                cursor = page[-1].seq
            if last_round:
                return
            await anyio.lowlevel.checkpoint()

    async with PostgresStore(dsn, schema=schema) as a, PostgresStore(dsn, schema=schema) as b:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as outer:
                outer.start_soon(tailer, a)
                async with anyio.create_task_group() as tg:
                    for node, store in enumerate((a, b)):
                        for w in range(writers_per_node):
                            tg.start_soon(writer, store, node, w)
                writing = False
        feed = [c.seq for c in await a.changes_since("acme", 0, 10_000)]
        assert a.commits < a.committed_updates, "concurrent appends should share transactions"
        for doc in {doc for doc, _ in acked.values()}:
            assert (await b.load(doc)).updates == sorted(
                (seq, update) for seq, (d, update) in acked.items() if d == doc
            )
    assert len(acked) == nodes * writers_per_node * per_writer
    assert feed == sorted(acked)
    assert tailed == feed, f"the tailer missed {sorted(set(feed) - set(tailed))[:10]}"


async def test_concurrent_compactions_from_two_nodes_during_appends_never_hide_an_update(
    dsn: str, schema: str
) -> None:
    doc_name = "acme/stock/loc-1"
    writers, per_writer = 6, 40
    written: set[str] = set()  # keys whose append was acknowledged
    compactions = 0
    writing = True

    async def writer(store: PostgresStore, name: str) -> None:
        author: pycrdt.Doc[Any] = pycrdt.Doc()  # one peer: its own client id, its own keys
        for i in range(per_writer):
            key = f"{name}-{i}"
            await store.append(doc_name, map_update(author, key, i))
            written.add(key)

    async def compactor(store: PostgresStore) -> None:
        # What a room does: load, fold, compact through the last seq it loaded. Other
        # nodes append and compact meanwhile.
        nonlocal compactions
        while writing:
            before = set(written)
            stored = await store.load(doc_name)
            rebuilt = rebuild(stored)
            keys = set(rebuilt.get("m", type=pycrdt.Map).keys())
            assert before <= keys, f"load() lost {sorted(before - keys)[:5]}"
            if stored.updates:
                await store.compact(doc_name, rebuilt.get_update(), stored.last_seq)
                compactions += 1
            await anyio.sleep(0)

    async with PostgresStore(dsn, schema=schema) as a, PostgresStore(dsn, schema=schema) as b:
        with anyio.fail_after(90):
            async with anyio.create_task_group() as outer:
                for store in (a, b, a, b):
                    outer.start_soon(compactor, store)
                async with anyio.create_task_group() as tg:
                    for w in range(writers):
                        tg.start_soon(writer, (a, b)[w % 2], f"w{w}")
                writing = False
        final = rebuild(await b.load(doc_name))
        snapshot_seq = (await a.load(doc_name)).snapshot_seq
    assert compactions > 4 and snapshot_seq > 0, "the test should have compacted while appending"
    expected = {f"w{w}-{i}": i for w in range(writers) for i in range(per_writer)}
    assert final.get("m", type=pycrdt.Map).to_py() == expected


async def test_the_same_idempotency_key_from_two_nodes_keeps_one_response(dsn: str, schema: str) -> None:
    async with PostgresStore(dsn, schema=schema) as a, PostgresStore(dsn, schema=schema) as b:
        for round_ in range(10):
            key = f"key-{round_}"
            responses = [Receipt("acme", key, f"fp-{n}", f"{n}".encode(), 1000.0 + n) for n in range(8)]
            kept: list[Receipt] = []

            async def remember(store: PostgresStore, response: Receipt) -> None:
                kept.append(await store.remember(response))

            async with anyio.create_task_group() as tg:
                for n, response in enumerate(responses):
                    tg.start_soon(remember, (a, b)[n % 2], response)
            assert len(set(kept)) == 1 and kept[0] in responses
            assert await a.recall("acme", key) == kept[0] == await b.recall("acme", key)


async def test_nodes_opening_one_fresh_schema_at_once_migrate_it_once(dsn: str, schema: str) -> None:
    stores = [PostgresStore(dsn, schema=schema) for _ in range(4)]
    seqs: list[int] = []

    async def open_and_append(store: PostgresStore) -> None:
        async with store:
            seqs.append(await store.append("acme/cart/1", b"x"))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for store in stores:
                tg.start_soon(open_and_append, store)
    assert sorted(seqs) == [1, 2, 3, 4]
    rows = await sql(dsn, f'SELECT version FROM "{schema}".syncline_migrations')
    assert [row[0] for row in rows] == list(range(1, SCHEMA_VERSION + 1))


async def _in_flight(dsn: str, schema: str, store: PostgresStore, doc: str) -> tuple[asyncpg.Connection, int]:
    """An append transaction of another node, left open after it drew its seq and wrote its
    change row: ``(connection, seq)``; ``COMMIT`` on the connection ends it."""
    con = await asyncpg.connect(dsn, timeout=5, server_settings={"search_path": f'"{schema}"'})
    try:
        await con.execute("BEGIN")
        seqs = await con.fetchval("SELECT syncline_take_seqs($1::text[], $2, $3)", [doc],
                                  store._doc_tag, store._mark_tag)
        await con.execute(
            "INSERT INTO changes (seq, doc, tenant, at, action) VALUES ($1, $2, 'acme', 0, NULL)", seqs[0], doc)
    except BaseException:
        await con.close()
        raise
    return con, int(seqs[0])


async def test_an_append_in_flight_holds_back_the_feed_but_not_appends_to_other_documents(
    dsn: str, schema: str
) -> None:
    async with PostgresStore(dsn, schema=schema) as store:
        first = await store.append("acme/cart/a", b"a1")
        con, held = await _in_flight(dsn, schema, store, "acme/cart/a")
        try:
            with anyio.fail_after(2):  # another document: no lock in common with the open transaction
                later = await store.append("acme/cart/b", b"b1")
            assert later > held > first
            # The feed stops below the seq still in flight, though a larger one has committed.
            assert [c.seq for c in await store.changes_since("acme", 0, 10)] == [first]
            assert await store.head() == first
            await con.execute("COMMIT")
            assert [c.seq for c in await store.changes_since("acme", first, 10)] == [held, later]
            assert await store.head() == later
        finally:
            await con.close()


async def test_an_append_to_a_document_locked_by_a_frozen_node_fails_within_the_store_timeout(
    dsn: str, schema: str
) -> None:
    async with PostgresStore(dsn, schema=schema, timeout=1) as store:
        con, _ = await _in_flight(dsn, schema, store, "acme/cart/a")
        try:
            started = anyio.current_time()
            with pytest.raises(StoreUnavailable):
                await store.append("acme/cart/a", b"waits")
            assert anyio.current_time() - started < 2.5
            await store.append("acme/cart/b", b"goes on")
        finally:
            await con.close()  # the frozen node's session ends: its locks and marker go with it
        seq = await store.append("acme/cart/a", b"after")
        assert [c.doc for c in await store.changes_since("acme", 0, 10)][-1] == "acme/cart/a"
        assert await store.head() == seq


async def test_sessions_bound_lock_waits_idle_transactions_and_dead_peers(dsn: str, schema: str) -> None:
    async with PostgresStore(dsn, schema=schema, timeout=2) as store:
        rows = await store._fetch(
            "SELECT current_setting('lock_timeout'), current_setting('statement_timeout'),"
            " current_setting('idle_in_transaction_session_timeout'), current_setting('tcp_user_timeout')"
        )
    assert tuple(rows[0]) == ("2s", "2s", "1s", "2000")  # tcp_user_timeout shows milliseconds


async def test_a_node_that_stops_inside_its_transaction_loses_its_session_and_locks(dsn: str, schema: str) -> None:
    async with PostgresStore(dsn, schema=schema, timeout=1) as store:
        pool = store._pool
        assert pool is not None
        async with pool.acquire() as frozen:  # a pooled session of this node, stuck in a transaction
            tr = frozen.transaction()
            await tr.start()
            await frozen.fetchval("SELECT syncline_take_seqs($1::text[], $2, $3)", ["acme/cart/a"],
                                  store._doc_tag, store._mark_tag)
            await anyio.sleep(1.5)  # PostgreSQL ends it after idle_in_transaction_session_timeout
            with anyio.fail_after(1):
                await store.append("acme/cart/a", b"goes on")
            assert len(await store.changes_since("acme", 0, 10)) == 1


# -- schema and settings -------------------------------------------------------------------


async def test_opening_creates_the_schema_tables_and_durable_sessions(dsn: str, schema: str) -> None:
    async with PostgresStore(dsn, schema=schema) as store:
        await store.append("acme/cart/1", b"x")
        settings = await store._fetch(
            "SELECT current_setting('synchronous_commit'), current_schema()"
        )
        assert tuple(settings[0]) == ("on", schema)
    tables = await sql(dsn, "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema)
    assert {row[0] for row in tables} == {
        "updates", "snapshots", "meta", "changes", "responses", "prices", "syncline_migrations", "claims",
        "epochs", "client_owners", "doc_access",
    }
    assert (await sql(dsn, f'SELECT count(*) FROM "{schema}".updates'))[0][0] == 1


async def test_a_schema_with_foreign_tables_is_refused(dsn: str, schema: str) -> None:
    await sql(dsn, f'CREATE SCHEMA "{schema}"')
    await sql(dsn, f'CREATE TABLE "{schema}".updates (id int)')
    with pytest.raises(StoreUnavailable, match="not a Syncline store"):
        async with PostgresStore(dsn, schema=schema):
            pass
    assert (await sql(dsn, f'SELECT count(*) FROM "{schema}".updates'))[0][0] == 0


async def test_a_schema_from_a_newer_syncline_is_refused(dsn: str, schema: str) -> None:
    async with PostgresStore(dsn, schema=schema) as store:
        await store.append("acme/cart/1", b"x")
    await sql(dsn, f'INSERT INTO "{schema}".syncline_migrations (version) VALUES ($1)', SCHEMA_VERSION + 1)
    with pytest.raises(StoreUnavailable, match="version"):
        async with PostgresStore(dsn, schema=schema):
            pass


async def test_a_version_1_schema_is_migrated_in_place_and_keeps_its_data(dsn: str, schema: str) -> None:
    async with PostgresStore(dsn, schema=schema) as store:
        await store.append("acme/cart/1", b"x", action="cart.add_item")
    # Back to what the first release left: its tables and rows, without those of versions 2 to 5.
    await sql(dsn, f'DROP TABLE "{schema}".claims, "{schema}".epochs, "{schema}".client_owners,'
                   f' "{schema}".doc_access')
    await sql(dsn, f'DROP FUNCTION "{schema}".syncline_take_seqs, "{schema}".syncline_feed_watermark')
    await sql(dsn, f'DROP SEQUENCE "{schema}".syncline_seq')
    await sql(dsn, f"INSERT INTO \"{schema}\".meta (key, value) VALUES ('last_seq', 1)")
    await sql(dsn, f'DELETE FROM "{schema}".syncline_migrations WHERE version > 1')
    async with PostgresStore(dsn, schema=schema) as store:
        assert (await store.load("acme/cart/1")).updates == [(1, b"x")]
        assert [c.seq for c in await store.changes_since("acme", 0, 10)] == [1]
        assert [first for first, _ in await store.epochs()] == [2]
        assert await store.append("acme/cart/1", b"y") == 2, "the sequence goes on from the old counter"
        assert [c.seq for c in await store.changes_since("acme", 0, 10)] == [1, 2]
        assert await store.claim("acme", "k", "fp", "h", expire_after=60) is None
        assert await store.bind_clients("acme/cart/1", "sub:a", claim=[5], check=[]) == {5: "sub:a"}
        await store.touch({"acme/cart/1": 5.0})
        assert (await store.accessed(["acme/cart/1"]))["acme/cart/1"].last_accessed_at == 5.0
    rows = await sql(dsn, f'SELECT version FROM "{schema}".syncline_migrations ORDER BY version')
    assert [row[0] for row in rows] == [1, 2, 3, 4, 5] == list(range(1, SCHEMA_VERSION + 1))


def test_bad_arguments_are_refused_before_connecting() -> None:
    with pytest.raises(ValueError, match="schema"):
        PostgresStore("postgresql://127.0.0.1/x", schema='x"; DROP TABLE updates; --')
    with pytest.raises(ValueError, match="max_batch"):
        PostgresStore("postgresql://127.0.0.1/x", max_batch=0)
    with pytest.raises(ValueError, match="pool_size"):
        PostgresStore("postgresql://127.0.0.1/x", pool_size=1)


# -- PostgreSQL going away and coming back -------------------------------------------------


class Outage:
    """A TCP proxy to PostgreSQL that the test can cut and restore, as a failing network would."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._scope: anyio.CancelScope | None = None

    async def up(self, tg: anyio.abc.TaskGroup) -> None:
        self._scope = await tg.start(self._serve)

    def down(self) -> None:
        assert self._scope is not None
        self._scope.cancel()  # closes the listener and every proxied connection

    async def _serve(self, *, task_status: anyio.abc.TaskStatus[anyio.CancelScope]) -> None:
        with anyio.CancelScope() as scope:
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
            async with listener, anyio.create_task_group() as tg:
                self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
                task_status.started(scope)
                await listener.serve(self._pipe, task_group=tg)

    async def _pipe(self, client: anyio.abc.SocketStream) -> None:
        async with client, await anyio.connect_tcp("127.0.0.1", self.target_port) as server:
            async def pump(source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream) -> None:
                async for chunk in source:
                    await sink.send(chunk)
                await sink.send_eof()

            async with anyio.create_task_group() as tg:
                tg.start_soon(pump, client, server)
                tg.start_soon(pump, server, client)


def through(dsn: str, port: int) -> str:
    """``dsn`` with its host and port replaced by the proxy's."""
    parts = urlsplit(dsn)
    netloc = f"{parts.username + '@' if parts.username else ''}127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def test_losing_postgres_raises_store_unavailable_then_the_store_recovers_by_itself(
    dsn: str, schema: str
) -> None:
    proxy = Outage(urlsplit(dsn).port or 5432)
    async with anyio.create_task_group() as tg:
        await proxy.up(tg)
        async with PostgresStore(through(dsn, proxy.port), schema=schema, timeout=3, connect_timeout=1) as store:
            before = await store.append("acme/cart/1", b"before")
            await store.check()

            proxy.down()
            with anyio.fail_after(20):
                with pytest.raises(StoreUnavailable):
                    await store.check()
                with pytest.raises(StoreUnavailable):
                    await store.append("acme/cart/1", b"refused")
                with pytest.raises(StoreUnavailable):
                    await store.load("acme/cart/1")
                with pytest.raises(StoreUnavailable):
                    await store.compact("acme/cart/1", b"snap", before)

            await proxy.up(tg)  # the same port again
            with anyio.fail_after(20):
                while True:  # at most one failure per pooled connection the outage broke
                    try:
                        await store.check()
                        break
                    except StoreUnavailable:
                        await anyio.sleep(0.05)
                after = await store.append("acme/cart/1", b"after")
                assert (await store.load("acme/cart/1")).updates == [(before, b"before"), (after, b"after")]
                assert after > before
        tg.cancel_scope.cancel()


async def test_terminated_sessions_fail_only_their_own_appends_and_the_store_goes_on(
    dsn: str, schema: str
) -> None:
    name = "syncline-" + secrets.token_hex(4)
    acked: dict[int, bytes] = {}
    refused = 0

    async def append(store: PostgresStore, i: int) -> None:
        nonlocal refused
        try:
            acked[await store.append("acme/cart/1", i.to_bytes(4, "big"))] = i.to_bytes(4, "big")
        except StoreUnavailable:
            refused += 1

    async with PostgresStore(dsn, schema=schema, application_name=name) as store:
        with anyio.fail_after(60):
            for round_ in range(5):
                async with anyio.create_task_group() as tg:
                    for i in range(40):
                        tg.start_soon(append, store, round_ * 40 + i)
                    await anyio.sleep(0.005)
                    await sql(dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                   " WHERE application_name = $1", name)
            while True:
                try:
                    await store.check()
                    break
                except StoreUnavailable:
                    await anyio.sleep(0.05)
            acked[await store.append("acme/cart/1", b"last")] = b"last"
        stored = await store.load("acme/cart/1")
    assert len(acked) + refused == 201
    # Nothing acknowledged is missing (an append refused as its COMMIT broke may still be stored).
    assert set(acked.items()) <= set(stored.updates)
    assert len(stored.updates) <= 201


async def test_opening_against_a_closed_port_raises_store_unavailable_without_the_password() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # nothing listens there now
    store = PostgresStore(f"postgresql://syncline:hunter2secret@127.0.0.1:{port}/db", connect_timeout=1)
    with pytest.raises(StoreUnavailable) as caught:
        async with store:
            pass
    assert "hunter2secret" not in str(caught.value) and "hunter2secret" not in repr(store)
    message = str(caught.value)
    assert message.startswith(f"postgresql://127.0.0.1:{port}/db: cannot connect to PostgreSQL:"), message
    assert "\n" not in message
    with pytest.raises(StoreUnavailable):
        await store.check()


# -- wiring: `syncline serve --store postgresql://...` ---------------------------------------


async def test_relays_started_with_a_postgresql_store_share_documents_and_no_sqlite_file(
    dsn: str, schema: str, tmp_path: Path
) -> None:
    from syncline.engine import StockLedger, encode_diff

    from harness.relay_process import RelayProcess
    from harness.ypeer import ypeer

    await sql(dsn, f'CREATE SCHEMA "{schema}"')
    store_url = f"{dsn}?search_path={schema}"  # asyncpg passes it to the server as a session setting
    first = RelayProcess(tmp_path / "node-a", flags=["--store", store_url]).start()
    try:
        async with ypeer(first.url_for("acme/stock/north"), acks=True) as writer:
            ledger = StockLedger(writer.doc, "acme/stock/north")
            for i in range(20):
                before = writer.doc.get_state()
                ledger.record(f"adj-{i}", "tee", 1, reason="restock", actor="test")
                await writer.send_update(encode_diff(writer.doc, before))
            await writer.wait_acked(21)
    finally:
        first.stop()  # SIGKILL: what was acknowledged is in PostgreSQL already
    second = RelayProcess(tmp_path / "node-b", flags=["--store", store_url]).start()
    try:
        async with ypeer(second.url_for("acme/stock/north")) as late:
            assert StockLedger(late.doc, "acme/stock/north").level("tee") == 20
    finally:
        second.stop()
    assert not (tmp_path / "node-a" / "syncline.sqlite3").exists()
    assert not (tmp_path / "node-b" / "syncline.sqlite3").exists()
    assert (await sql(dsn, f'SELECT count(*) FROM "{schema}".changes'))[0][0] >= 20


def test_catalog_command_loads_prices_into_a_postgresql_store(dsn: str, schema: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    def catalog(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "syncline.app.cli", "catalog", *args],
                              capture_output=True, text=True, timeout=60)

    prices = tmp_path / "prices.json"
    prices.write_text('{"currency": "EUR", "prices": {"tee": 1299, "mug": 450}}')
    from harness.services import run_async

    run_async(lambda: sql(dsn, f'CREATE SCHEMA "{schema}"'))
    store_url = f"{dsn}?search_path={schema}"
    loaded = catalog("load", str(prices), "--tenant", "acme", "--store", store_url, "--data-dir", str(tmp_path))
    assert loaded.returncode == 0, loaded.stderr
    shown = catalog("show", "--tenant", "acme", "--store", store_url)
    assert shown.stdout.splitlines() == ["mug\t450\tEUR", "tee\t1299\tEUR"]
    assert not (tmp_path / "syncline.sqlite3").exists()
    down = catalog("show", "--tenant", "acme", "--store", "postgresql://nobody:pw-secret@127.0.0.1:1/none")
    assert down.returncode == 3 and "syncline catalog:" in down.stderr
    assert "Traceback" not in down.stderr and "pw-secret" not in down.stderr
