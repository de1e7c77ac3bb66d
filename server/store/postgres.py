"""The cluster store: one PostgreSQL database shared by every relay node (asyncpg).

Layout (schema version 5, tracked in ``syncline_migrations``)::

    updates(seq bigint PRIMARY KEY, doc text, blob bytea)          -- the append log
    snapshots(doc text PRIMARY KEY, seq bigint, blob bytea)        -- one per document
    meta(key text PRIMARY KEY, value bigint)                       -- feed_floor, probe
    changes(seq bigint PRIMARY KEY, doc, tenant, at, action)       -- the change feed
    responses(tenant, key, fingerprint, record bytea, created_at)  -- idempotent responses
    prices(tenant, product, unit_price, currency)                  -- the price catalog
    claims(tenant, key, fingerprint, holder, created_at)           -- keys of running requests (v2)
    epochs(first_seq bigint PRIMARY KEY, epoch text)               -- change-feed epochs, one per opening (v2)
    client_owners(doc, client bigint, owner)                       -- who may write each Yjs clientID (v3)
    syncline_seq                                                   -- the sequence seqs come from (v4)
    syncline_take_seqs(), syncline_feed_watermark()                -- see below (v4)
    doc_access(doc text PRIMARY KEY, last_accessed_at, guest)      -- cart lifetimes (v5)

Ordering without a cluster-wide lock. Seqs come from the PostgreSQL sequence
``syncline_seq``, so append transactions of different documents never wait on each
other. Each append transaction (one call of ``syncline_take_seqs``) first takes a
transaction-level advisory lock per document it writes (in key order, so two batches
never wait on each other in a cycle), and only then draws its seqs. So, per
document, seqs commit in order: a load of a document holds every row of it up to its
last seq, and any row of it committed later has a larger seq. Rooms, their catch-up
from the store and compaction rely on exactly that, and nothing more.

Across documents a transaction holding seq 10 may commit after one holding seq 11, so
the change feed, which readers resume at "seq > last seen", reads only up to a
*watermark*: the lowest seq that a transaction still in flight may yet commit, less
one. Each append transaction, after its document locks and before drawing seqs, takes
a shared advisory lock (its *in-flight marker*) keyed by the sequence's ``last_value``
at that moment, a lower bound of every seq it will draw. Locks live in PostgreSQL's
lock table, visible to every session at once and released by the end of the
transaction however it ends (commit, rollback, a killed session): nothing to clean
up after a dead node. ``syncline_feed_watermark`` reads the sequence's ``last_value``
first, then the markers (``pg_locks``), and returns the smaller of ``last_value`` and
the lowest marker; the feed then reads the committed rows up to it in a later
statement (a later snapshot). A seq at or below the watermark therefore belongs to a
transaction that has already ended or never will. A marker's key holds 32 bits of
its seq: the reader restores the rest from ``last_value`` (a marker is never 2^31
seqs behind it). Markers of other schemas on the same database only lower the
watermark, never raise it. The price: a node frozen inside an append transaction
holds the feed back (not the appends of other documents) until PostgreSQL ends its
session, after ``idle_in_transaction_session_timeout``.

Sessions are set up so that a vanished node's locks go within seconds:
``statement_timeout`` and ``lock_timeout`` (the store time-out),
``idle_in_transaction_session_timeout`` (half of it: a node that stops talking to
PostgreSQL inside a transaction loses the session, and its locks, while the appends
that wait on those locks still have time to commit) and TCP
keepalives plus ``tcp_user_timeout`` (a partitioned peer's socket is noticed by the
server in seconds, not the two hours of the default keepalive).

Compaction takes the snapshot row's lock (``INSERT … ON CONFLICT DO UPDATE … WHERE
snapshots.seq < excluded.seq``) and deletes the folded rows in the same transaction,
so compactions of one document from several nodes serialize, an older or equal
snapshot is a no-op, and appends (which never touch that row) go on meanwhile.

Durability: every connection sets ``synchronous_commit=on``, so a commit returns only
after PostgreSQL has flushed it to its WAL.
"""

from __future__ import annotations

import logging
import secrets
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio
import asyncpg

from .base import Binding, Change, ClientsBound, StoredDoc, Receipt, StoreUnavailable
from .records import receipt_row
from . import postgres_sql as pgsql
from .postgres_sql import SCHEMA_VERSION
from .postgres_access import PostgresAccess
from .postgres_tables import PostgresTables, row_count
from .writer import Append, GroupCommitStore

__all__ = ["SCHEMA_VERSION", "PostgresStore", "shown_dsn"]

logger = logging.getLogger(__name__)

def _lock_tag(name: str) -> int:
    """A signed 32-bit advisory-lock class for ``name``."""
    value = zlib.crc32(name.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def _session_settings(timeout: float) -> dict[str, str]:
    """What every session sets besides durability: bounded waits, and a vanished peer noticed
    in seconds (see the module doc)."""
    millis = str(max(1, round(timeout * 1000)))
    return {
        "statement_timeout": millis,
        "lock_timeout": millis,
        # Half: a node stalled inside a transaction loses its session (and its locks) while
        # the appends waiting on those locks still have time to commit.
        "idle_in_transaction_session_timeout": str(max(1, round(timeout * 500))),
        "tcp_keepalives_idle": "2",
        "tcp_keepalives_interval": "1",
        "tcp_keepalives_count": "3",
        "tcp_user_timeout": millis,
    }


def shown_dsn(dsn: str) -> str:
    """``host:port/database`` of a DSN: never its user or password, for messages and logs."""
    try:
        parts = urlsplit(dsn)
        return f"postgresql://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
    except ValueError:
        return "postgresql://?"


class PostgresStore(PostgresTables, PostgresAccess, GroupCommitStore):
    """The :class:`~syncline.server.store.base.Store` on a PostgreSQL database, shared by relay nodes.

    ``async with PostgresStore("postgresql://user@host/db") as store:`` connects a pool
    of up to ``pool_size`` connections, creates or migrates the schema and starts the
    writer task; leaving the block commits every append already queued, then closes
    the pool. A store opens once. ``schema`` names the PostgreSQL schema holding the
    tables (created if missing); None uses the connection's ``search_path`` (``public``).

    One writer task per store takes appends from a bounded memory object stream and
    commits those queued together in one transaction (at most ``max_batch``). Other
    writes (compaction, pruning, responses, prices, probes) run as their own
    transactions on the pool. ``timeout`` (seconds) bounds each statement and each wait
    for a pooled connection; ``connect_timeout`` bounds opening a connection.
    ``application_name`` names the store's sessions in ``pg_stat_activity`` (one per node, say).

    Any failure of PostgreSQL, the network or the driver raises :class:`StoreUnavailable`;
    the pool opens fresh connections on later calls, so the store recovers by itself
    once the database is back.

    Metrics as :class:`~syncline.server.store.sqlite.SQLiteStore`: ``commits``,
    ``committed_updates`` and the ``on_commit(batch_size, seconds)`` hook.
    """

    def __init__(
        self,
        dsn: str,
        *,
        max_batch: int = 1024,
        pool_size: int = 8,
        schema: str | None = None,
        timeout: float = 5.0,
        connect_timeout: float = 5.0,
        application_name: str = "syncline",
    ) -> None:
        if pool_size < 2:
            raise ValueError(f"pool_size must be at least 2 (a writer and a reader), not {pool_size}")
        if schema is not None and not pgsql.SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema must be a plain identifier (letters, digits, _), not {schema!r}")
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("timeout and connect_timeout must be greater than 0")
        super().__init__(max_batch)
        self.dsn = dsn
        self.pool_size = pool_size
        self.schema = schema
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.application_name = application_name

        self._pool: asyncpg.Pool | None = None
        # Advisory-lock classes of this schema's document locks and in-flight markers (set
        # from the schema the tables are in once open: a search_path in the DSN counts too).
        self._doc_tag = self._mark_tag = 0

    def __repr__(self) -> str:
        schema = f", schema={self.schema!r}" if self.schema else ""
        return f"PostgresStore({shown_dsn(self.dsn)!r}{schema}, state={self._state})"

    # -- lifecycle (see GroupCommitStore) ------------------------------------------------

    async def _open_resources(self) -> None:
        settings = {"synchronous_commit": "on", "application_name": self.application_name,
                    **_session_settings(self.timeout)}
        if self.schema is not None:
            settings["search_path"] = f'"{self.schema}"'
        try:
            self._pool = await asyncpg.create_pool(
                # min_size=0: during an outage the pool does not keep trying (and logging a traceback)
                # to restore a floor of idle connections; connections open on demand instead.
                self.dsn, min_size=0, max_size=self.pool_size, timeout=self.connect_timeout,
                command_timeout=self.timeout, server_settings=settings,
            )
            async with self._pool.acquire(timeout=self.connect_timeout) as con:
                await self._migrate(con)
        except (OSError, TimeoutError) as exc:
            reason = str(exc) or f"no answer within {self.connect_timeout:g} s"
            raise self._unavailable(f"cannot connect to PostgreSQL: {reason}") from exc
        except pgsql.DB_ERRORS as exc:
            raise self._unavailable(f"cannot open: {exc}") from exc
        except ValueError as exc:  # asyncpg refuses a malformed DSN with ValueError
            raise self._unavailable(f"cannot open: {exc}") from exc

    async def _migrate(self, con: asyncpg.Connection) -> None:
        async with con.transaction():
            # Nodes starting together migrate one at a time (the lock is per schema name).
            await con.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('syncline.migrate:' || $1, 0))",
                self.schema or "",
            )
            if self.schema is not None:
                await con.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            target_schema = await con.fetchval("SELECT current_schema()")
            if target_schema is None:
                raise StoreUnavailable(f"{self!r}: no schema to create tables in (check search_path)")
            self._doc_tag = _lock_tag(f"syncline.doc:{target_schema}")
            self._mark_tag = _lock_tag(f"syncline.inflight:{target_schema}")
            await con.execute(
                "CREATE TABLE IF NOT EXISTS syncline_migrations ("
                " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            version = int(await con.fetchval("SELECT coalesce(max(version), 0) FROM syncline_migrations"))
            if version > SCHEMA_VERSION:
                raise StoreUnavailable(
                    f"{self!r}: schema {target_schema} has version {version}; this Syncline reads up to {SCHEMA_VERSION}"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in pgsql.MIGRATIONS[target - 1]:
                    try:
                        await con.execute(statement)
                    except (asyncpg.DuplicateTableError, asyncpg.DuplicateObjectError) as exc:
                        raise StoreUnavailable(
                            f"{self!r}: schema {target_schema} is not a Syncline store "
                            f"(migration to version {target}: {exc})"
                        ) from exc
                await con.execute("INSERT INTO syncline_migrations (version) VALUES ($1)", target)
            # A new feed epoch from the next seq on. An append in flight may draw a seq on either
            # side of it: an event id minted under the old epoch for such a seq costs its reader
            # one reset, never a missed change.
            last = await con.fetchval(pgsql.LAST_SEQ)
            await con.execute(
                "INSERT INTO epochs (first_seq, epoch) VALUES ($1, $2)"
                " ON CONFLICT (first_seq) DO UPDATE SET epoch = excluded.epoch",
                int(last) + 1, secrets.token_hex(8),
            )

    async def _close_resources(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            with anyio.fail_after(self.timeout):
                await pool.close()
        except (TimeoutError, *pgsql.DB_ERRORS) as exc:
            logger.warning("closing the pool of %r failed, terminating it: %s", self, exc)
            pool.terminate()

    # -- the Store interface -----------------------------------------------------------

    async def append(
        self, doc: str, update: bytes, *, action: str | None = None, receipt: Receipt | None = None,
        binding: Binding | None = None,
    ) -> int:
        """Durably append ``update`` to ``doc``'s log; return its seq once PostgreSQL committed it.

        Its change row (with ``action``) and ``receipt``, if given, commit in the same
        transaction. A ``binding`` is bound first, in a transaction of its own (see
        :meth:`bind_clients`): :class:`ClientsBound` if it is refused, nothing appended.
        Raises :class:`StoreUnavailable` if the store is not open or the commit failed. If the connection broke while COMMIT was in flight, PostgreSQL
        may still have committed the transaction: the append is then not acknowledged
        but stored, which a retry makes harmless (Yjs updates are idempotent, and a
        retried idempotent request finds its stored response).
        """
        if not isinstance(doc, str):
            raise TypeError(f"doc must be str, not {type(doc).__name__}")
        if binding is not None:
            owners = await self.bind_clients(doc, binding.owner, claim=binding.claim, check=binding.check)
            if any(who != binding.owner for who in owners.values()):
                raise ClientsBound(owners)
        request = Append(doc=doc, update=bytes(update), action=action, receipt=receipt)
        with anyio.move_on_after(self.timeout) as scope:
            await self._submit(request)
            return int(await request.outcome())
        assert scope.cancelled_caught
        # Not acknowledged; it may still commit (then a retry is harmless, as above).
        raise self._unavailable(f"no commit within {self.timeout:g} s")

    async def load(self, doc: str) -> StoredDoc:
        """The snapshot of ``doc`` (if any) and its log rows after it, in seq order."""
        rows = await self._fetch(pgsql.LOAD, doc)
        return StoredDoc.from_rows((int(kind), int(seq), bytes(blob)) for kind, seq, blob in rows)

    async def updates_after(self, doc: str, after_seq: int, limit: int) -> list[tuple[int, bytes]] | None:
        """Up to ``limit`` log rows of ``doc`` after ``after_seq``, in seq order; None when a
        snapshot folded some of them (one read: the snapshot check and the rows agree)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        rows = await self._fetch(pgsql.UPDATES_AFTER, doc, after_seq, limit)
        if any(int(row[0]) == 0 for row in rows):
            return None
        return [(int(seq), bytes(blob)) for _, seq, blob in rows]

    async def compact(self, doc: str, snapshot: bytes, through_seq: int) -> None:
        """Replace ``doc``'s rows with ``seq <= through_seq`` by ``snapshot``, in one transaction.

        Safe from several nodes at once: the snapshot row's lock serializes compactions
        of ``doc``, an equal or newer snapshot makes this a no-op, and only rows up to
        ``through_seq`` are deleted. Raises ``ValueError`` if ``through_seq`` is below 1
        or above the largest seq committed so far.
        """
        if through_seq < 1:
            raise ValueError(f"through_seq must be at least 1, not {through_seq}")
        blob = bytes(snapshot)

        async def work(con: asyncpg.Connection) -> None:
            last = int(await con.fetchval(pgsql.LAST_SEQ))
            if through_seq > last:
                raise ValueError(f"through_seq {through_seq} is above the last assigned seq {last}")
            if await con.fetchval(pgsql.PUT_SNAPSHOT, doc, through_seq, blob) is None:
                return  # an equal or newer snapshot is already there
            await con.execute("DELETE FROM updates WHERE doc = $1 AND seq <= $2", doc, through_seq)

        await self._transact(work)

    async def check(self) -> None:
        """Raise :class:`StoreUnavailable` unless a write transaction commits and a read succeeds."""

        async def work(con: asyncpg.Connection) -> None:
            # A transaction id makes COMMIT write and flush a commit record (and fails on a
            # read-only standby), without a row that probes of every node would queue on.
            await con.execute("SELECT pg_current_xact_id()")

        await self._transact(work)
        await self._fetch("SELECT 1")

    async def documents(self, prefix: str = "", *, after: str = "", limit: int | None = None) -> list[str]:
        """Names of the documents with a snapshot or log rows that start with ``prefix`` and
        sort after ``after``, sorted; at most ``limit`` of them."""
        rows = await self._fetch(
            "SELECT doc FROM (SELECT doc FROM snapshots UNION SELECT doc FROM updates) AS names"
            " WHERE left(doc, $1) = $2 AND doc COLLATE \"C\" > $3 ORDER BY doc COLLATE \"C\" LIMIT $4",
            len(prefix), prefix, after, limit,
        )
        return [str(row[0]) for row in rows]

    async def changes_since(self, tenant: str, after_seq: int, limit: int) -> list[Change]:
        """Up to ``limit`` changes of ``tenant``'s documents after ``after_seq``, in seq order.

        Only changes at or below the watermark are returned (see the module doc): every
        seq up to it has committed or never will, so a reader that resumes after the last
        seq it saw never misses a change committed later."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        rows = await self._after_watermark(
            "SELECT seq, doc, at, action FROM changes WHERE tenant = $1 AND seq > $2 AND seq <= $4"
            " ORDER BY seq LIMIT $3",
            tenant, after_seq, limit,
        )
        return [Change(int(seq), str(doc), float(at), None if action is None else str(action))
                for seq, doc, at, action in rows]

    async def head(self) -> int:
        """The largest seq of any committed change at or below the feed's watermark (0 when there is none)."""
        rows = await self._after_watermark("SELECT coalesce(max(seq), 0) FROM changes WHERE seq <= $1")
        return int(rows[0][0])

    async def feed_floor(self) -> int:
        """The largest seq pruned from the change feed (0 if nothing was pruned)."""
        rows = await self._fetch("SELECT value FROM meta WHERE key = 'feed_floor'")
        return int(rows[0][0]) if rows else 0

    async def epochs(self) -> list[tuple[int, str]]:
        """The change feed's epochs, ``(first_seq, epoch)`` in seq order; one more per node start."""
        rows = await self._fetch("SELECT first_seq, epoch FROM epochs ORDER BY first_seq")
        return [(int(first), str(epoch)) for first, epoch in rows]

    async def prune_changes(self, before: float) -> int:
        """Delete the change-feed rows committed before ``before``; return how many."""

        async def work(con: asyncpg.Connection) -> int:
            # Never above the watermark: a row still in flight below the floor would be skipped.
            watermark = int(await con.fetchval(pgsql.FEED_WATERMARK, self._mark_tag))
            floor = await con.fetchval("SELECT max(seq) FROM changes WHERE at < $1 AND seq <= $2", before, watermark)
            if floor is None:
                return 0
            # By seq, not by time: the feed must stay a gapless suffix above its floor.
            pruned = row_count(await con.execute("DELETE FROM changes WHERE seq <= $1", floor))
            await con.execute("UPDATE meta SET value = greatest(value, $1) WHERE key = 'feed_floor'", int(floor))
            return pruned

        pruned: int = await self._transact(work)
        return pruned

    # -- plumbing ----------------------------------------------------------------------

    def _unavailable(self, reason: str) -> StoreUnavailable:
        return StoreUnavailable(f"{shown_dsn(self.dsn)}: {reason}")

    def _reason(self, exc: BaseException) -> str:
        """What failed, in words: a bare time-out says how long it waited."""
        if isinstance(exc, TimeoutError) and not str(exc):
            return f"no answer within {self.timeout:g} s"
        return str(exc) or type(exc).__name__

    def _open_pool_or_raise(self) -> asyncpg.Pool:
        if self._state != "open" or self._pool is None:
            raise self._unavailable(f"store is {self._state}")
        return self._pool

    @asynccontextmanager
    async def _connection(self, pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; one that saw a failure is closed, so the pool replaces it.

        A session the server or the network ended, or a statement cut short, leaves the
        connection in a state nobody should reuse; a fresh one costs one connect.
        """
        con = await pool.acquire(timeout=self.timeout)
        try:
            yield con
        except ValueError:  # refused by this module before or after its statements: a sound session
            raise
        except BaseException:
            try:
                con.terminate()
            except asyncpg.InterfaceError:
                pass  # the pool already took back a connection whose session the server ended
            raise
        finally:
            with anyio.CancelScope(shield=True):  # a cancelled caller must not keep the connection
                await pool.release(con, timeout=self.timeout)

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        pool = self._open_pool_or_raise()
        try:
            with anyio.fail_after(self.timeout):
                async with self._connection(pool) as con:
                    return list(await con.fetch(sql, *args, timeout=self.timeout))
        except pgsql.DB_ERRORS as exc:
            raise self._unavailable(f"read failed: {self._reason(exc)}") from exc

    async def _after_watermark(self, sql: str, *args: object) -> list[asyncpg.Record]:
        """Run ``sql`` with the feed's watermark as its last argument, in a statement (and so a
        snapshot) that starts after the watermark was read."""
        pool = self._open_pool_or_raise()
        try:
            with anyio.fail_after(self.timeout):
                async with self._connection(pool) as con:
                    watermark = int(await con.fetchval(pgsql.FEED_WATERMARK, self._mark_tag, timeout=self.timeout))
                    return list(await con.fetch(sql, *args, watermark, timeout=self.timeout))
        except pgsql.DB_ERRORS as exc:
            raise self._unavailable(f"read failed: {self._reason(exc)}") from exc

    async def _transact(self, work: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        """Run ``work`` in its own transaction on a pooled connection (not through the writer)."""
        pool = self._open_pool_or_raise()
        try:
            with anyio.fail_after(self.timeout):  # the whole transaction, not each statement
                async with self._connection(pool) as con, con.transaction():
                    return await work(con)
        except pgsql.DB_ERRORS as exc:
            raise self._unavailable(f"write failed: {self._reason(exc)}") from exc

    async def _commit_appends(self, batch: list[Append]) -> None:
        """One group-commit transaction; resolves or fails every append of ``batch``."""
        pool = self._pool
        assert pool is not None
        started = time.perf_counter()
        docs = [r.doc for r in batch]
        responses = [receipt_row(r.receipt) for r in batch if r.receipt is not None]
        try:
            # The whole transaction within the time-out, so that a stalled database fails this
            # batch in seconds and the batches behind it get their turn.
            with anyio.fail_after(self.timeout):
                async with self._connection(pool) as con, con.transaction():
                    seqs = [int(seq) for seq in
                            await con.fetchval(pgsql.TAKE_SEQS, docs, self._doc_tag, self._mark_tag)]
                    await con.execute(
                        pgsql.INSERT_BATCH, seqs, docs, [r.update for r in batch],
                        [doc.split("/", 1)[0] for doc in docs], [r.action for r in batch],
                    )
                    if responses:
                        await con.executemany(pgsql.INSERT_RESPONSE, responses)
        except pgsql.DB_ERRORS as exc:
            if isinstance(exc, TimeoutError) and not str(exc):
                exc = TimeoutError(self._reason(exc))
            self._commit_failed(batch, exc)
            return
        elapsed = time.perf_counter() - started
        self._committed(batch, seqs, elapsed)
