"""The default store: one SQLite file in WAL mode, written by one writer task with group commit.

Layout (schema version 1, tracked in ``PRAGMA user_version``)::

    updates(seq INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL, blob BLOB NOT NULL)
    snapshots(doc TEXT PRIMARY KEY, seq INTEGER NOT NULL, blob BLOB NOT NULL)
    meta(key TEXT PRIMARY KEY, value)            -- health probes write here

Two connections: the *writer* connection belongs to the single writer task, which
takes every write (appends, compactions, health probes) from one bounded memory
object stream, so writes are serialized in arrival order and never interleave
inside a transaction. Appends waiting in the stream are drained into one
``BEGIN IMMEDIATE … COMMIT`` (group commit): many updates share one fsync. The
*reader* connection (``query_only``) serves ``load``/``documents``/``updates_since``
with single-statement reads, each a consistent WAL snapshot of committed data.

Sequence numbers are assigned inside the write transaction as one more than the
largest seq ever used (``sqlite_sequence`` of the AUTOINCREMENT table, so a seq
freed by compaction is never reused). Within one file, commit order is seq order.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import aiosqlite
import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .base import StoredDoc, StoreUnavailable

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""The schema this module writes; ``PRAGMA user_version`` of a current file."""

_SYNCHRONOUS_MODES = ("FULL", "EXTRA", "NORMAL")
_WAL_SIZE_LIMIT = 64 * 1024 * 1024

# Index i migrates a file from user_version i to i + 1, inside one transaction.
# Plain CREATE TABLE (no IF NOT EXISTS): a foreign SQLite file with tables of the
# same names is refused instead of being silently adopted.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        (
            "CREATE TABLE updates ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " doc TEXT NOT NULL,"
            " blob BLOB NOT NULL)"
        ),
        "CREATE INDEX updates_doc_seq ON updates (doc, seq)",
        (
            "CREATE TABLE snapshots ("
            " doc TEXT PRIMARY KEY,"
            " seq INTEGER NOT NULL,"
            " blob BLOB NOT NULL)"
        ),
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value)",
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION

# The largest seq ever assigned: sqlite_sequence remembers it even after the rows are gone.
_LAST_SEQ = (
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'updates'), 0),"
    " coalesce((SELECT max(seq) FROM updates), 0))"
)
# Snapshot (kind 0) then the log rows after it (kind 1), in one statement: one read snapshot.
_LOAD = (
    "SELECT 0, seq, blob FROM snapshots WHERE doc = :doc"
    " UNION ALL"
    " SELECT 1, seq, blob FROM updates WHERE doc = :doc"
    " AND seq > coalesce((SELECT seq FROM snapshots WHERE doc = :doc), 0)"
    " ORDER BY 1, 2"
)


@dataclass(eq=False)
class _Request:
    """One write waiting for the writer task; the caller waits on ``done``.

    A bare asyncio future, not an anyio.Event: this is the per-update hot path, and
    aiosqlite ties the store to asyncio anyway.
    """

    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future(), init=False)
    seq: int = field(default=0, init=False)
    error: Exception | None = field(default=None, init=False)
    cause: BaseException | None = field(default=None, init=False)

    def resolve(self, seq: int = 0) -> None:
        self.seq = seq
        if not self.done.done():
            self.done.set_result(None)

    def fail(self, error: Exception, cause: BaseException | None = None) -> None:
        # Each waiter gets its own error instance, raised in its own task.
        self.error = error
        self.cause = cause
        if not self.done.done():
            self.done.set_result(None)

    async def outcome(self) -> int:
        await self.done  # a cancelled waiter cancels only its own future; resolve() then skips it
        if self.error is not None:
            raise self.error from self.cause
        return self.seq


@dataclass(eq=False)
class _Append(_Request):
    doc: str = ""
    update: bytes = b""


@dataclass(eq=False)
class _Compact(_Request):
    doc: str = ""
    snapshot: bytes = b""
    through_seq: int = 0


@dataclass(eq=False)
class _Probe(_Request):
    pass


class SQLiteStore:
    """The :class:`~syncline.server.store.base.Store` on one SQLite file (WAL, group commit).

    ``async with SQLiteStore(path) as store:`` opens (creating the file and its
    directory), checks and migrates the file and starts the writer task; leaving
    the block commits every append already queued, then closes. A store opens once.

    ``synchronous`` is SQLite's mode: ``FULL`` (default) fsyncs every commit, so an
    acknowledged append survives power loss; ``NORMAL`` survives a process crash
    but may lose the last commits on power loss. ``max_batch`` bounds the updates
    committed in one transaction. ``busy_timeout`` (seconds) is how long a write
    waits for a lock held by another connection before failing.

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
    ) -> None:
        if synchronous.upper() not in _SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS_MODES)}, not {synchronous!r}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        if busy_timeout < 0:
            raise ValueError(f"busy_timeout must not be negative, not {busy_timeout}")
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self.max_batch = max_batch
        self.busy_timeout = busy_timeout
        self.commits = 0
        self.committed_updates = 0
        self.on_commit: Callable[[int, float], None] | None = None
        self._next_seq: int | None = None

        self._state = "new"  # new -> open -> closing -> closed
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._send: MemoryObjectSendStream[_Request] | None = None
        self._receive: MemoryObjectReceiveStream[_Request] | None = None
        self._task_group: TaskGroup | None = None
        self._broken: BaseException | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, state={self._state})"

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RuntimeError(f"{self!r} can be opened only once")
        self._state = "opening"
        try:
            await self._open_connections()
            self._send, self._receive = anyio.create_memory_object_stream[_Request](4 * self.max_batch)
            self._task_group = anyio.create_task_group()
            await self._task_group.__aenter__()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._close_resources()
            self._state = "closed"
            raise
        try:
            await self._task_group.start(self._write_loop)
        except BaseException as exc:
            self._state = "closing"
            self._send.close()
            try:
                await self._task_group.__aexit__(type(exc), exc, exc.__traceback__)
            finally:
                with anyio.CancelScope(shield=True):
                    await self._close_resources()
                self._state = "closed"
            raise
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._state = "closing"
        assert self._send is not None and self._task_group is not None
        # The writer drains what is queued, then sees the end of the stream. Its loop is
        # shielded, so the final flush completes even when this task is being cancelled.
        self._send.close()
        try:
            return await self._task_group.__aexit__(exc_type, exc, tb)
        finally:
            with anyio.CancelScope(shield=True):
                await self._close_resources()
            self._state = "closed"

    async def _open_connections(self) -> None:
        try:
            await anyio.Path(self.path.parent).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"{self.path}: cannot create directory: {exc}") from exc
        try:
            self._writer = await self._connect()
            db = self._writer
            rows = list(await db.execute_fetchall("PRAGMA quick_check"))
            if [tuple(row) for row in rows] != [("ok",)]:
                problems = "; ".join(str(row[0]) for row in rows[:5])
                raise StoreUnavailable(f"{self.path} is corrupt (quick_check: {problems})")
            rows = list(await db.execute_fetchall("PRAGMA journal_mode=WAL"))
            if not rows or str(rows[0][0]).lower() != "wal":
                raise StoreUnavailable(f"{self.path}: cannot switch to WAL journal mode (got {rows!r})")
            await db.execute(f"PRAGMA synchronous={self.synchronous}")
            # After a burst, truncate the WAL back to this size at checkpoints instead of keeping it.
            await db.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
            await self._migrate(db)
            self._reader = await self._connect()
            await self._reader.execute("PRAGMA query_only=1")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc

    async def _connect(self) -> aiosqlite.Connection:
        # isolation_level=None: no implicit transactions; this module says BEGIN and COMMIT.
        db = await aiosqlite.connect(self.path, isolation_level=None, timeout=self.busy_timeout)
        try:
            await db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        except BaseException:
            with anyio.CancelScope(shield=True):
                await db.close()
            raise
        return db

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        await db.execute("BEGIN IMMEDIATE")
        try:
            rows = list(await db.execute_fetchall("PRAGMA user_version"))
            version = int(rows[0][0])
            if version > SCHEMA_VERSION:
                raise StoreUnavailable(
                    f"{self.path} has schema version {version}; this Syncline reads up to {SCHEMA_VERSION}"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target - 1]:
                    try:
                        await db.execute(statement)
                    except sqlite3.OperationalError as exc:
                        raise StoreUnavailable(
                            f"{self.path} is not a Syncline store (migration to version {target}: {exc})"
                        ) from exc
                await db.execute(f"PRAGMA user_version={target}")
            await db.execute("COMMIT")
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._rollback(db)
            raise

    async def _close_resources(self) -> None:
        if self._receive is not None:
            self._receive.close()
        if self._send is not None:
            self._send.close()
        errors: list[sqlite3.Error] = []
        for name in ("_reader", "_writer"):
            db: aiosqlite.Connection | None = getattr(self, name)
            setattr(self, name, None)
            if db is None:
                continue
            try:
                await db.close()
            except sqlite3.Error as exc:
                errors.append(exc)
        if errors:
            raise StoreUnavailable(f"{self.path}: error while closing: {errors[0]}") from errors[0]

    # -- the Store interface -----------------------------------------------------------

    async def append(self, doc: str, update: bytes) -> int:
        """Durably append ``update`` to ``doc``'s log; return its seq once committed.

        Raises :class:`StoreUnavailable` if the store is not open or the commit failed;
        in that case nothing of the transaction this update was part of is stored.
        """
        if not isinstance(doc, str):
            raise TypeError(f"doc must be str, not {type(doc).__name__}")
        request = _Append(doc=doc, update=bytes(update))
        await self._submit(request)
        return await request.outcome()

    async def load(self, doc: str) -> StoredDoc:
        """The snapshot of ``doc`` (if any) and its log rows after it, in seq order."""
        rows = await self._read(_LOAD, {"doc": doc})
        snapshot: bytes | None = None
        snapshot_seq = 0
        updates: list[tuple[int, bytes]] = []
        for kind, seq, blob in rows:
            if kind == 0:
                snapshot, snapshot_seq = bytes(blob), int(seq)
            else:
                updates.append((int(seq), bytes(blob)))
        return StoredDoc(snapshot=snapshot, snapshot_seq=snapshot_seq, updates=updates)

    async def compact(self, doc: str, snapshot: bytes, through_seq: int) -> None:
        """Replace ``doc``'s rows with ``seq <= through_seq`` by ``snapshot``, in one transaction.

        ``snapshot`` must contain at least every update of ``doc`` up to ``through_seq``.
        Does nothing if ``doc`` already has a snapshot at ``through_seq`` or later.
        Raises ``ValueError`` if ``through_seq`` is below 1 or above the largest seq ever
        assigned (a snapshot claiming future seqs would hide later appends).
        """
        if through_seq < 1:
            raise ValueError(f"through_seq must be at least 1, not {through_seq}")
        request = _Compact(doc=doc, snapshot=bytes(snapshot), through_seq=through_seq)
        await self._submit(request)
        await request.outcome()

    async def check(self) -> None:
        """Raise :class:`StoreUnavailable` unless a write transaction commits and a read succeeds."""
        request = _Probe()
        await self._submit(request)
        await request.outcome()
        await self._read("SELECT 1", {})

    async def documents(self) -> list[str]:
        """Names of every document with a snapshot or log rows, sorted."""
        rows = await self._read("SELECT doc FROM snapshots UNION SELECT doc FROM updates ORDER BY 1", {})
        return [str(row[0]) for row in rows]

    async def updates_since(self, seq: int, limit: int) -> list[tuple[int, str, bytes]]:
        """Up to ``limit`` log rows with a seq above ``seq``, across documents, in seq order.

        Rows folded into a snapshot by :meth:`compact` are gone: a reader that falls
        behind compaction must reload the affected documents instead.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        rows = await self._read(
            "SELECT seq, doc, blob FROM updates WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )
        return [(int(s), str(d), bytes(b)) for s, d, b in rows]

    # -- plumbing ----------------------------------------------------------------------

    def _unavailable(self, reason: str) -> StoreUnavailable:
        return StoreUnavailable(f"{self.path}: {reason}")

    async def _submit(self, request: _Request) -> None:
        if self._state != "open" or self._send is None:
            raise self._unavailable(f"store is {self._state}")
        if self._broken is not None:
            raise self._unavailable(f"writer connection is broken: {self._broken}") from self._broken
        try:
            try:
                self._send.send_nowait(request)
            except anyio.WouldBlock:
                await self._send.send(request)  # the writer is behind: wait for room in its queue
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            raise self._unavailable("store closed") from exc

    async def _read(self, sql: str, params: dict[str, object] | tuple[object, ...]) -> list[sqlite3.Row]:
        if self._state != "open" or self._reader is None:
            raise self._unavailable(f"store is {self._state}")
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except (sqlite3.Error, ValueError) as exc:
            # aiosqlite raises ValueError when its connection closed underneath the call.
            raise self._unavailable(f"read failed: {exc}") from exc

    async def _write_loop(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The single writer: group appends into transactions until the stream ends.

        Shielded: it stops only when ``__aexit__`` closes the send side, after the
        queued writes are committed, so cancellation of the owner never drops them.
        """
        assert self._receive is not None
        receive = self._receive
        with anyio.CancelScope(shield=True):
            task_status.started()
            try:
                while True:
                    try:
                        request = await receive.receive()
                    except anyio.EndOfStream:
                        return
                    await self._serve(request, receive)
            finally:
                # Only reached with requests left if the loop itself failed: fail them, never hang them.
                leftovers: list[_Request] = []
                while True:
                    try:
                        leftovers.append(receive.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                        break
                receive.close()
                for leftover in leftovers:
                    leftover.fail(self._unavailable("writer stopped"))

    async def _serve(self, request: _Request, receive: MemoryObjectReceiveStream[_Request]) -> None:
        """Run ``request``, batching it with the appends queued right behind it."""
        pending: _Request | None = request
        while pending is not None:
            if not isinstance(pending, _Append):
                await self._run_other(pending)
                return
            batch: list[_Append] = [pending]
            pending = None
            while len(batch) < self.max_batch:
                try:
                    queued = receive.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
                if isinstance(queued, _Append):
                    batch.append(queued)
                else:
                    pending = queued  # keep arrival order: it runs after this batch
                    break
            await self._commit_appends(batch)

    async def _commit_appends(self, batch: list[_Append]) -> None:
        if self._broken is not None:
            for request in batch:
                request.fail(self._unavailable("writer connection is broken"), self._broken)
            return
        db = self._writer
        assert db is not None
        started = time.perf_counter()
        try:
            await db.execute("BEGIN IMMEDIATE")
            try:
                if self._next_seq is None:  # this task is the file's only writer: read it once
                    self._next_seq = await self._last_seq(db) + 1
                first = self._next_seq
                await db.executemany(
                    "INSERT INTO updates (seq, doc, blob) VALUES (?, ?, ?)",
                    [(first + i, r.doc, r.update) for i, r in enumerate(batch)],
                )
                await db.execute("COMMIT")
            except sqlite3.Error:
                await self._rollback(db)
                raise
        except (sqlite3.Error, ValueError) as exc:
            self._next_seq = None
            logger.warning("commit of %d updates to %s failed: %s", len(batch), self.path, exc)
            for request in batch:
                request.fail(self._unavailable(f"commit failed: {exc}"), exc)
            return
        elapsed = time.perf_counter() - started
        self._next_seq = first + len(batch)
        self.commits += 1
        self.committed_updates += len(batch)
        for i, request in enumerate(batch):
            request.resolve(first + i)
        if self.on_commit is not None:
            try:
                self.on_commit(len(batch), elapsed)
            except Exception:
                logger.exception("on_commit hook of %s failed", self.path)

    async def _run_other(self, request: _Request) -> None:
        if self._broken is not None:
            request.fail(self._unavailable("writer connection is broken"), self._broken)
            return
        db = self._writer
        assert db is not None
        refusal: ValueError | None = None
        try:
            await db.execute("BEGIN IMMEDIATE")
            try:
                if isinstance(request, _Compact):
                    refusal = await self._compact_in_transaction(db, request)
                elif isinstance(request, _Probe):
                    await db.execute(
                        "INSERT INTO meta (key, value) VALUES ('probe', 1)"
                        " ON CONFLICT (key) DO UPDATE SET value = value + 1"
                    )
                else:
                    raise TypeError(f"unknown request {request!r}")
                await db.execute("COMMIT")
            except sqlite3.Error:
                await self._rollback(db)
                raise
        except (sqlite3.Error, ValueError) as exc:
            request.fail(self._unavailable(f"write failed: {exc}"), exc)
            return
        if refusal is not None:
            request.fail(refusal)
        else:
            request.resolve()

    async def _compact_in_transaction(self, db: aiosqlite.Connection, request: _Compact) -> ValueError | None:
        """Write the snapshot and delete the rows it folds; return why not, if refused."""
        last = await self._last_seq(db)
        if request.through_seq > last:
            return ValueError(f"through_seq {request.through_seq} is above the last assigned seq {last}")
        rows = list(await db.execute_fetchall("SELECT seq FROM snapshots WHERE doc = ?", (request.doc,)))
        if rows and int(rows[0][0]) >= request.through_seq:
            return None  # an equal or newer snapshot is already there
        await db.execute(
            "INSERT INTO snapshots (doc, seq, blob) VALUES (?, ?, ?)"
            " ON CONFLICT (doc) DO UPDATE SET seq = excluded.seq, blob = excluded.blob",
            (request.doc, request.through_seq, request.snapshot),
        )
        await db.execute("DELETE FROM updates WHERE doc = ? AND seq <= ?", (request.doc, request.through_seq))
        return None

    async def _last_seq(self, db: aiosqlite.Connection) -> int:
        rows = list(await db.execute_fetchall(_LAST_SEQ))
        return int(rows[0][0])

    async def _rollback(self, db: aiosqlite.Connection) -> None:
        """Roll back an open transaction; if that fails, the writer connection is unusable."""
        try:
            if db.in_transaction:
                await db.execute("ROLLBACK")
        except (sqlite3.Error, ValueError) as exc:
            logger.error("rollback on %s failed; refusing further writes: %s", self.path, exc)
            self._broken = exc
