"""The default store: one SQLite file in WAL mode, written by one writer task with group commit.

Layout (schema version 5, tracked in ``PRAGMA user_version``)::

    updates(seq INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL, blob BLOB NOT NULL)
    snapshots(doc TEXT PRIMARY KEY, seq INTEGER NOT NULL, blob BLOB NOT NULL)
    meta(key TEXT PRIMARY KEY, value)            -- health probes, the feed floor
    changes(seq INTEGER PRIMARY KEY, doc, tenant, at, action)   -- the change feed (v2)
    responses(tenant, key, fingerprint, record, created_at)     -- idempotent responses (v2)
    prices(tenant, product, unit_price, currency)               -- the price catalog (v2)
    epochs(first_seq INTEGER PRIMARY KEY, epoch)                -- change-feed epochs, one per opening (v3)
    client_owners(doc, client, owner)                           -- who may write each Yjs clientID (v4)
    doc_access(doc, last_accessed_at, guest)                    -- cart lifetimes (v5)

Two connections: the *writer* (a plain ``sqlite3`` connection) belongs to one thread of
its own (:class:`~.thread.WriterThread`), which takes every write (appends, compactions,
probes, the adapters' records) from one queue, so writes are serialized in arrival order
and never interleave inside a transaction. The writes waiting in the queue are drained into
one ``BEGIN IMMEDIATE … COMMIT`` (group commit), each write other than an append in a
savepoint of its own, so that one that fails is undone alone: many writes share one fsync.
The thread hands each batch's outcome to the event loop and goes on with the next batch at
once. The *reader* connection (aiosqlite, ``query_only``) serves the reads with
single-statement queries, each a consistent WAL snapshot of committed data.

Sequence numbers are assigned inside the write transaction as one more than the
largest seq ever used (``sqlite_sequence`` of the AUTOINCREMENT table, so a seq
freed by compaction is never reused). Within one file, commit order is seq order.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from ..lockfile import LockFile, acquire, holder_pid
from .base import Binding, Claim, ClientsBound, Receipt, StoreCorrupt, StoredDoc, StoreLocked, StoreUnavailable
from .records import receipt_row
from . import sqlite_sql as litesql
from .sqlite_sql import SCHEMA_VERSION
from .sqlite_access import SQLiteAccess
from .sqlite_tables import SQLiteTables, bind_in
from .thread import WriterThread
from .writer import Append, GroupCommitStore, Pending

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

logger = logging.getLogger(__name__)

class _Transaction(Pending):
    """Any other write: ``work(connection)`` runs in a savepoint of a group-commit transaction
    on the writer's thread; its return value is the result. A ``ValueError`` it returns
    (not raises) refuses the request after the commit of whatever it did (usually nothing)."""

    __slots__ = ("work",)

    def __init__(self, *, work: Callable[[sqlite3.Connection], Any]) -> None:
        super().__init__()
        self.work = work


class SQLiteStore(SQLiteTables, SQLiteAccess, GroupCommitStore):
    """The :class:`~syncline.server.store.base.Store` on one SQLite file (WAL, group commit).

    ``async with SQLiteStore(path) as store:`` opens (creating the file and its
    directory), checks and migrates the file and starts the writer task; leaving
    the block commits every append already queued, then closes. A store opens once.

    ``synchronous`` is SQLite's mode: ``FULL`` (default) fsyncs every commit, so an
    acknowledged append survives power loss; ``NORMAL`` survives a process crash
    but may lose the last commits on power loss. ``max_batch`` bounds the updates
    committed in one transaction. ``busy_timeout`` (seconds) is how long a write
    waits for a lock held by another connection before failing.

    ``exclusive`` (the default) makes the store the file's only appender: on open it takes
    an advisory lock on ``<path>.lock`` (see :mod:`syncline.server.lockfile`), held until
    close, and a second exclusive store on the file, in another process or in this one,
    is refused with :class:`~syncline.server.store.base.StoreLocked`. ``exclusive=False``
    takes no lock and refuses appends: a side writer of prices and records beside a
    running relay (``syncline catalog``). Plain SQLite readers never need the lock.

    Metrics: ``commits`` counts append transactions, ``committed_updates`` the
    updates they committed; ``on_commit(batch_size, seconds)`` is called after each
    append transaction (exceptions it raises are logged, not propagated).
    """

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        max_batch: int = 1024,
        busy_timeout: float = 5.0,
        exclusive: bool = True,
    ) -> None:
        if synchronous.upper() not in litesql.SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(litesql.SYNCHRONOUS_MODES)}, not {synchronous!r}")
        if busy_timeout < 0:
            raise ValueError(f"busy_timeout must not be negative, not {busy_timeout}")
        super().__init__(max_batch)
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self.busy_timeout = busy_timeout
        self.exclusive = exclusive
        self._next_seq: int | None = None
        self._claims: dict[tuple[str, str], tuple[Claim, str]] = {}  # (tenant, key) -> (claim, holder)

        self._writer: sqlite3.Connection | None = None
        self._thread: WriterThread[Pending] | None = None
        """The writer connection's own thread: it opens that connection, takes the queued writes
        and commits them in batches, and closes it."""
        self._reader: aiosqlite.Connection | None = None
        self._broken: BaseException | None = None
        self._lock: LockFile | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, state={self._state})"

    # -- lifecycle (see GroupCommitStore) ------------------------------------------------

    async def _open_resources(self) -> None:
        try:
            await anyio.Path(self.path.parent).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"{self.path}: cannot create directory: {exc}") from exc
        if self.exclusive:
            lock_path = self.path.with_name(self.path.name + ".lock")
            try:
                self._lock = acquire(lock_path)
            except OSError as exc:
                raise StoreUnavailable(f"{self.path}: cannot lock {lock_path}: {exc}") from exc
            if self._lock is None:
                raise StoreLocked(self.path, holder_pid(lock_path))
        self._thread = WriterThread(f"syncline-sqlite-writer {self.path.name}", max_batch=self.max_batch,
                                    commit=self._commit_batch, settle=self._settle)
        try:
            self._writer = await self._thread.call(self._open_writer)
            self._reader = await aiosqlite.connect(self.path, isolation_level=None, timeout=self.busy_timeout)
            await self._reader.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            await self._reader.execute("PRAGMA query_only=1")
        except sqlite3.DatabaseError as exc:
            if not isinstance(exc, sqlite3.OperationalError):  # "file is not a database", "malformed"
                raise StoreCorrupt(f"cannot open {self.path}: {exc}") from exc
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc

    def _open_writer(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; this module says BEGIN and COMMIT.
        # check_same_thread=False: made in the writer thread, the only thread that ever uses it
        # (the flag only spares sqlite3 its check).
        db = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            rows = db.execute("PRAGMA quick_check").fetchall()
            if [tuple(row) for row in rows] != [("ok",)]:
                problems = "; ".join(str(row[0]) for row in rows[:5])
                raise StoreCorrupt(f"{self.path} is corrupt (quick_check: {problems})")
            rows = db.execute("PRAGMA journal_mode=WAL").fetchall()
            if not rows or str(rows[0][0]).lower() != "wal":
                raise StoreUnavailable(f"{self.path}: cannot switch to WAL journal mode (got {rows!r})")
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            # After a burst, truncate the WAL back to this size at checkpoints instead of keeping it.
            db.execute(f"PRAGMA journal_size_limit={litesql.WAL_SIZE_LIMIT}")
            self._migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreUnavailable(
                    f"{self.path} has schema version {version}; this Syncline reads up to {SCHEMA_VERSION}"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in litesql.MIGRATIONS[target - 1]:
                    try:
                        db.execute(statement)
                    except sqlite3.OperationalError as exc:
                        raise StoreUnavailable(
                            f"{self.path} is not a Syncline store (migration to version {target}: {exc})"
                        ) from exc
                db.execute(f"PRAGMA user_version={target}")
            # A new feed epoch from the next seq on (an epoch with no seq yet is replaced).
            db.execute(
                "INSERT INTO epochs (first_seq, epoch) VALUES (?, ?)"
                " ON CONFLICT (first_seq) DO UPDATE SET epoch = excluded.epoch",
                (_last_seq(db) + 1, secrets.token_hex(8)),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    async def _close_resources(self) -> None:
        errors: list[sqlite3.Error] = []
        reader, self._reader = self._reader, None
        writer, self._writer = self._writer, None
        if reader is not None:
            try:
                await reader.close()
            except sqlite3.Error as exc:
                errors.append(exc)
        thread, self._thread = self._thread, None
        if writer is not None and thread is not None:
            try:
                await thread.call(writer.close)
            except sqlite3.Error as exc:
                errors.append(exc)
        if thread is not None:
            await thread.stop()
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()  # after the connections: the next holder finds everything committed
        if errors:
            raise StoreUnavailable(f"{self.path}: error while closing: {errors[0]}") from errors[0]

    # -- the Store interface -----------------------------------------------------------

    async def append(
        self, doc: str, update: bytes, *, action: str | None = None, receipt: Receipt | None = None,
        binding: Binding | None = None,
    ) -> int:
        """Durably append ``update`` to ``doc``'s log; return its seq once committed.

        Its change row (with ``action``) and ``receipt``, if given, commit in the same
        transaction, and so does its ``binding``: a refused one (:class:`ClientsBound`) takes
        no seq and inserts no row. Raises :class:`StoreUnavailable` if the store is not open or
        the commit failed; in that case nothing of the transaction this update was part of is
        stored.
        """
        if not isinstance(doc, str):
            raise TypeError(f"doc must be str, not {type(doc).__name__}")
        if not self.exclusive:
            raise self._unavailable("opened with exclusive=False, which never appends")
        request = Append(doc=doc, update=bytes(update), action=action, receipt=receipt, binding=binding)
        self._queue(request)
        return int(await request.outcome())

    async def load(self, doc: str) -> StoredDoc:
        """The snapshot of ``doc`` (if any) and its log rows after it, in seq order."""
        rows = await self._read(litesql.LOAD, {"doc": doc})
        return StoredDoc.from_rows((int(kind), int(seq), bytes(blob)) for kind, seq, blob in rows)

    async def updates_after(self, doc: str, after_seq: int, limit: int) -> list[tuple[int, bytes]] | None:
        """Up to ``limit`` log rows of ``doc`` after ``after_seq``, in seq order; None when a
        snapshot folded some of them (one read: the snapshot check and the rows agree)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        rows = await self._read(litesql.UPDATES_AFTER, {"doc": doc, "after": after_seq, "limit": limit})
        if any(int(row[0]) == 0 for row in rows):
            return None
        return [(int(seq), bytes(blob)) for _, seq, blob in rows]

    async def compact(self, doc: str, snapshot: bytes, through_seq: int) -> None:
        """Replace ``doc``'s rows with ``seq <= through_seq`` by ``snapshot``, in one transaction.

        ``snapshot`` must contain at least every update of ``doc`` up to ``through_seq``.
        Does nothing if ``doc`` already has a snapshot at ``through_seq`` or later.
        Raises ``ValueError`` if ``through_seq`` is below 1 or above the largest seq ever
        assigned (a snapshot claiming future seqs would hide later appends).
        """
        if through_seq < 1:
            raise ValueError(f"through_seq must be at least 1, not {through_seq}")
        blob = bytes(snapshot)

        def work(db: sqlite3.Connection) -> ValueError | None:
            last = _last_seq(db)
            if through_seq > last:
                return ValueError(f"through_seq {through_seq} is above the last assigned seq {last}")
            row = db.execute("SELECT seq FROM snapshots WHERE doc = ?", (doc,)).fetchone()
            if row is not None and int(row[0]) >= through_seq:
                return None  # an equal or newer snapshot is already there
            db.execute(
                "INSERT INTO snapshots (doc, seq, blob) VALUES (?, ?, ?)"
                " ON CONFLICT (doc) DO UPDATE SET seq = excluded.seq, blob = excluded.blob",
                (doc, through_seq, blob),
            )
            db.execute("DELETE FROM updates WHERE doc = ? AND seq <= ?", (doc, through_seq))
            return None

        await self._transact(work)

    async def check(self) -> None:
        """Raise :class:`StoreUnavailable` unless a write transaction commits and a read succeeds."""

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('probe', 1) ON CONFLICT (key) DO UPDATE SET value = value + 1"
            )

        await self._transact(work)
        await self._read("SELECT 1", {})

    async def documents(self, prefix: str = "", *, after: str = "", limit: int | None = None) -> list[str]:
        """Names of the documents with a snapshot or log rows that start with ``prefix`` and
        sort after ``after``, sorted; at most ``limit`` of them."""
        rows = await self._read(
            "SELECT doc FROM (SELECT doc FROM snapshots UNION SELECT doc FROM updates)"
            " WHERE substr(doc, 1, ?) = ? AND doc > ? ORDER BY 1 LIMIT ?",
            (len(prefix), prefix, after, -1 if limit is None else limit),
        )
        return [str(row[0]) for row in rows]

    # -- plumbing ----------------------------------------------------------------------

    def _unavailable(self, reason: str) -> StoreUnavailable:
        return StoreUnavailable(f"{self.path}: {reason}")

    async def _transact(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        request = _Transaction(work=work)
        await self._submit(request)
        return await request.outcome()

    async def _read(self, sql: str, params: dict[str, object] | tuple[object, ...]) -> list[sqlite3.Row]:
        if self._state != "open" or self._reader is None:
            raise self._unavailable(f"store is {self._state}")
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except (sqlite3.Error, ValueError) as exc:
            # aiosqlite raises ValueError when its connection closed underneath the call.
            raise self._unavailable(f"read failed: {exc}") from exc

    def _commit_sync(self, db: sqlite3.Connection, batch: list[Pending]) -> tuple[int, list[Any]]:
        """One whole group-commit transaction, in the writer's thread: the writes of ``batch`` in
        arrival order, each write other than an append in a savepoint of its own. Returns
        the next free seq and the outcome of each write: an append's seq or its
        :class:`ClientsBound`; another write's result, or the error that rolled back its savepoint."""
        db.execute("BEGIN IMMEDIATE")
        try:
            if self._next_seq is None:  # this thread is the file's only writer: read it once
                self._next_seq = _last_seq(db) + 1
            seq = self._next_seq
            now = time.time()
            outcomes: list[Any] = []
            run: list[Append] = []
            for request in batch:
                if isinstance(request, Append) and request.binding is None:
                    run.append(request)
                    outcomes.append(seq + len(run) - 1)
                    continue
                seq += _insert_appends(db, seq, run, now)
                run = []
                if isinstance(request, Append):
                    outcome = _bind_and_insert(db, seq, request, now)
                    if not isinstance(outcome, ClientsBound):
                        seq += 1
                else:
                    outcome = _in_savepoint(db, request.work)  # type: ignore[attr-defined]
                outcomes.append(outcome)
            seq += _insert_appends(db, seq, run, now)
            db.execute("COMMIT")
        except BaseException:
            self._rollback_sync(db)
            raise
        return seq, outcomes

    # -- the writer thread (see WriterThread) --------------------------------------------

    async def _start_writer(self) -> None:
        pass  # the writer thread has run since _open_resources, which opened the connection on it

    async def _stop_writer(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
        if self._thread is not None:
            with anyio.CancelScope(shield=True):
                # A call runs after every write queued before it: those are committed and settled
                # before _close_resources takes the connection away.
                await self._thread.call(_nothing)
        return None

    async def _submit(self, request: Pending) -> None:
        self._queue(request)

    def _queue(self, request: Pending) -> None:
        if self._state != "open" or self._thread is None:
            raise self._unavailable(f"store is {self._state}")
        self._thread.queue(request)

    @property
    def queued_writes(self) -> int:
        """Writes waiting for the writer thread to take them into a transaction."""
        return self._thread.queued if self._thread is not None else 0

    def _commit_batch(self, batch: list[Pending]) -> Any:
        """In the writer thread: commit ``batch``; the outcome :meth:`_settle` reads."""
        if self._broken is not None:
            return _Broken(self._broken)
        db = self._writer
        assert db is not None
        started = time.perf_counter()
        try:
            self._next_seq, outcomes = self._commit_sync(db, batch)
        except (sqlite3.Error, ValueError) as exc:
            self._next_seq = None
            return exc
        return _Committed(outcomes, time.perf_counter() - started)

    def _settle(self, batch: list[Pending], outcome: Any) -> None:
        """On the event loop: resolve or fail every write of ``batch`` by its commit's outcome.
        A fault of ours while doing so fails the writes still waiting: none is left hanging."""
        try:
            self._settle_outcome(batch, outcome)
        except Exception as exc:
            logger.exception("settling a commit of %d writes to %r failed", len(batch), self)
            for request in batch:
                if not request.done.done():
                    request.fail(self._unavailable(f"settling the commit failed: {exc}"), exc)

    def _settle_outcome(self, batch: list[Pending], outcome: Any) -> None:
        appends = [request for request in batch if isinstance(request, Append)]
        if isinstance(outcome, _Broken):
            for request in batch:
                request.fail(self._unavailable("writer connection is broken"), outcome.error)
            return
        if isinstance(outcome, Exception):
            if appends:
                self._commit_failed(appends, outcome)
            for request in batch:
                if not isinstance(request, Append):
                    request.fail(self._unavailable(f"write failed: {outcome}"), outcome)
            return
        stored: list[Append] = []
        seqs: list[int] = []
        for request, result in zip(batch, outcome.outcomes, strict=True):
            if isinstance(request, Append) and isinstance(result, int):
                stored.append(request)
                seqs.append(result)
            elif isinstance(result, _RolledBack):
                request.fail(self._unavailable(f"write failed: {result.error}"), result.error)
            elif isinstance(result, (ValueError, ClientsBound)):
                request.fail(result)
            else:
                request.resolve(result)
        if stored:
            self._committed(stored, seqs, outcome.seconds)

    def _rollback_sync(self, db: sqlite3.Connection) -> None:
        """Roll back an open transaction; if that fails, the writer connection is unusable."""
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            logger.error("rollback on %s failed; refusing further writes: %s", self.path, exc)
            self._broken = exc


def _nothing() -> None:
    return None


class _Broken:
    """The writer connection could not roll back a transaction: every write is refused."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Committed:
    __slots__ = ("outcomes", "seconds")

    def __init__(self, outcomes: list[Any], seconds: float) -> None:
        self.outcomes, self.seconds = outcomes, seconds


class _RolledBack:
    """A write whose savepoint was rolled back: the error it raised."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


def _in_savepoint(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], Any]) -> Any:
    """Run ``work`` in a savepoint: its result, or a :class:`_RolledBack` with what it raised
    (a database error, or a ValueError), everything it did undone and the batch going on."""
    db.execute("SAVEPOINT other_write")
    try:
        result = work(db)
    except (sqlite3.Error, ValueError) as exc:
        db.execute("ROLLBACK TO other_write")  # if this fails too, the whole batch rolls back
        db.execute("RELEASE other_write")
        return _RolledBack(exc)
    db.execute("RELEASE other_write")
    return result


def _bind_and_insert(db: sqlite3.Connection, seq: int, request: Append, now: float) -> int | ClientsBound:
    """Bind ``request``'s claim, then insert its rows as ``seq``: its seq, or the
    :class:`ClientsBound` that refused it (its claim bound all the same, no row inserted)."""
    binding = request.binding
    assert binding is not None
    owners = bind_in(db, request.doc, binding.owner, binding.claim, binding.check)
    if any(who != binding.owner for who in owners.values()):
        return ClientsBound(owners)
    _insert_appends(db, seq, [request], now)
    return seq


def _insert_appends(db: sqlite3.Connection, first: int, run: list[Append], now: float) -> int:
    """Insert ``run``'s rows as seqs ``first``, ``first + 1``, ...; return how many."""
    if run:
        db.executemany(
            "INSERT INTO updates (seq, doc, blob) VALUES (?, ?, ?)",
            [(first + i, r.doc, r.update) for i, r in enumerate(run)],
        )
        db.executemany(
            "INSERT INTO changes (seq, doc, tenant, at, action) VALUES (?, ?, ?, ?, ?)",
            [(first + i, r.doc, r.doc.split("/", 1)[0], now, r.action) for i, r in enumerate(run)],
        )
        responses = [receipt_row(r.receipt) for r in run if r.receipt is not None]
        if responses:
            db.executemany(litesql.INSERT_RESPONSE, responses)
    return len(run)


def _last_seq(db: sqlite3.Connection) -> int:
    return int(db.execute(litesql.LAST_SEQ).fetchone()[0])
