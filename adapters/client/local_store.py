"""The client's durable state: one SQLite file per data directory, shared by processes.

Tables (WAL mode, ``synchronous=FULL``, ``busy_timeout``; schema version in ``user_version``):

* ``updates(seq, doc, blob, origin, writer)``: every Yjs update this device holds, local
  edits and updates received from the relay alike, in commit order. A document's state
  is its snapshot plus its rows after it. ``seq`` is an AUTOINCREMENT primary key, so
  another process tailing the table by ``seq`` never misses a row and never sees one
  reused; ``writer`` names the client instance that wrote the row (it skips its own).
* ``snapshots(doc, blob, through)``: the document folded up to ``updates.seq = through``.
* ``outbox(seq, doc, record)``: local edits the relay has not acknowledged. ``seq`` is the
  seq of the same update in ``updates``; ``record`` is msgpack ``{"u": update, "at": unix
  time, "by": writer}``. A row leaves only when the relay acknowledged it as durable, or
  when the relay's state vector shows it already holds the update.
* ``sync_state(doc, status, last_acked_at, error, leader, updated_at)``: what the process
  that syncs a document (its leader, see :mod:`.same_device`) reports, for the others.

A local edit is one transaction writing ``updates`` and ``outbox``: it is on disk before
the edit call returns. Methods are synchronous on purpose: a pycrdt observer (which runs
inside the edit call) must finish the write before the call returns.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgpack

from .errors import LocalStoreError

FILENAME = "client.sqlite3"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000

Origin = Literal["local", "relay"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    doc TEXT NOT NULL,
    blob BLOB NOT NULL,
    origin TEXT NOT NULL,
    writer TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS updates_doc_seq ON updates(doc, seq);
CREATE TABLE IF NOT EXISTS snapshots (
    doc TEXT PRIMARY KEY,
    blob BLOB NOT NULL,
    through INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    doc TEXT NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_doc_seq ON outbox(doc, seq);
CREATE TABLE IF NOT EXISTS sync_state (
    doc TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    last_acked_at REAL,
    error TEXT,
    leader TEXT,
    updated_at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    seq: int
    update: bytes
    at: float
    writer: str


@dataclass(frozen=True, slots=True)
class Tail:
    """What a reader lacks after ``cursor``: maybe a snapshot, then rows, and the new cursor."""

    snapshot: bytes | None
    updates: list[tuple[int, bytes]]
    cursor: int


@dataclass(frozen=True, slots=True)
class SyncState:
    doc: str
    status: str
    last_acked_at: float | None
    error: str | None
    leader: str | None
    updated_at: float


@dataclass(frozen=True, slots=True)
class DocSummary:
    doc: str
    pending: int
    state: SyncState | None


class LocalStore:
    """One connection to a data directory's SQLite file; not shared between threads."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / FILENAME
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except (OSError, sqlite3.Error) as exc:
            raise LocalStoreError(self.path, f"cannot open: {exc}") from exc
        self._closed = False
        try:
            self._setup()
        except sqlite3.Error as exc:
            self._db.close()
            raise LocalStoreError(self.path, f"cannot set up: {exc}") from exc

    def _setup(self) -> None:
        db = self._db
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"journal_mode is {mode}, not wal")
        db.execute("PRAGMA synchronous = FULL")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {check}")
        with self._write():
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"schema version {version} is newer than this client's {SCHEMA_VERSION}")
            if version < SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._db.close()

    # -- transactions --------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE``: take the write lock first, so the transaction never fails halfway on it."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: several SELECTs see one consistent snapshot of the file."""
        self._db.execute("BEGIN")
        try:
            yield self._db
        finally:
            self._db.execute("COMMIT")

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise LocalStoreError(self.path, f"{action}: {exc}") from exc

    # -- change signal ---------------------------------------------------------------

    def data_version(self) -> int:
        """Changes whenever another connection commits to the file (a few microseconds to ask)."""
        with self._errors("data_version"):
            return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    # -- the document log ----------------------------------------------------------

    def tail(self, doc: str, after: int, skip_writer: str | None = None) -> Tail:
        """Rows of ``doc`` after seq ``after`` (not those ``skip_writer`` wrote), in order.

        If compaction folded rows this reader had not seen, the snapshot comes first:
        applying it again is harmless, Yjs updates are idempotent.
        """
        with self._errors("read updates"), self._read() as db:
            row = db.execute("SELECT blob, through FROM snapshots WHERE doc = ?", (doc,)).fetchone()
            snapshot = None
            cursor = after
            if row is not None and row[1] > after:
                snapshot, cursor = bytes(row[0]), int(row[1])
            rows = db.execute(
                "SELECT seq, blob, writer FROM updates WHERE doc = ? AND seq > ? ORDER BY seq", (doc, cursor)
            ).fetchall()
        updates = []
        for seq, blob, writer in rows:
            cursor = seq
            if writer != skip_writer:
                updates.append((int(seq), bytes(blob)))
        return Tail(snapshot, updates, cursor)

    def append(self, doc: str, update: bytes, *, origin: Origin, writer: str) -> int:
        """Store ``update``; a local one goes into the outbox too, in the same transaction."""
        with self._errors("write update"), self._write() as db:
            cur = db.execute(
                "INSERT INTO updates (doc, blob, origin, writer) VALUES (?, ?, ?, ?)", (doc, update, origin, writer)
            )
            seq = int(cur.lastrowid or 0)
            if origin == "local":
                record = msgpack.packb({"u": update, "at": time.time(), "by": writer})
                db.execute("INSERT INTO outbox (seq, doc, record) VALUES (?, ?, ?)", (seq, doc, record))
        return seq

    def append_many_local(self, doc: str, updates: list[bytes], writer: str) -> int:
        """Store several local updates in one transaction (bulk imports, benchmarks); return the last seq."""
        seq = 0
        now = time.time()
        with self._errors("write updates"), self._write() as db:
            for update in updates:
                cur = db.execute(
                    "INSERT INTO updates (doc, blob, origin, writer) VALUES (?, ?, 'local', ?)", (doc, update, writer)
                )
                seq = int(cur.lastrowid or 0)
                record = msgpack.packb({"u": update, "at": now, "by": writer})
                db.execute("INSERT INTO outbox (seq, doc, record) VALUES (?, ?, ?)", (seq, doc, record))
        return seq

    def row_count(self, doc: str) -> int:
        with self._errors("count updates"):
            return int(self._db.execute("SELECT COUNT(*) FROM updates WHERE doc = ?", (doc,)).fetchone()[0])

    def compact(self, doc: str, snapshot: bytes, through: int) -> int:
        """Replace ``doc``'s rows up to ``through`` by ``snapshot`` (which must contain them all).

        One transaction: a crash leaves the old rows or the snapshot, never neither.
        Returns the number of rows folded.
        """
        with self._errors("compact"), self._write() as db:
            row = db.execute("SELECT through FROM snapshots WHERE doc = ?", (doc,)).fetchone()
            if row is not None and row[0] >= through:
                return 0
            db.execute(
                "INSERT INTO snapshots (doc, blob, through) VALUES (?, ?, ?) "
                "ON CONFLICT(doc) DO UPDATE SET blob = excluded.blob, through = excluded.through",
                (doc, snapshot, through),
            )
            return db.execute("DELETE FROM updates WHERE doc = ? AND seq <= ?", (doc, through)).rowcount

    # -- the outbox ----------------------------------------------------------------

    def outbox(self, doc: str, after: int = 0, limit: int | None = None) -> list[OutboxEntry]:
        """Un-acknowledged local updates of ``doc`` after ``after``, oldest first."""
        sql = "SELECT seq, record FROM outbox WHERE doc = ? AND seq > ? ORDER BY seq"
        params: tuple[object, ...] = (doc, after)
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        with self._errors("read outbox"):
            rows = self._db.execute(sql, params).fetchall()
        entries = []
        for seq, record in rows:
            body = msgpack.unpackb(record, raw=False)
            entries.append(OutboxEntry(int(seq), bytes(body["u"]), float(body["at"]), str(body["by"])))
        return entries

    def pending(self, doc: str) -> int:
        with self._errors("count outbox"):
            return int(self._db.execute("SELECT COUNT(*) FROM outbox WHERE doc = ?", (doc,)).fetchone()[0])

    def acknowledge(self, doc: str, through: int, *, at: float | None = None) -> int:
        """The relay holds every update of ``doc`` up to seq ``through``: drop them, note the time."""
        now = time.time() if at is None else at
        with self._errors("acknowledge"), self._write() as db:
            removed = db.execute("DELETE FROM outbox WHERE doc = ? AND seq <= ?", (doc, through)).rowcount
            db.execute(
                "INSERT INTO sync_state (doc, status, last_acked_at, updated_at) VALUES (?, 'connected', ?, ?) "
                "ON CONFLICT(doc) DO UPDATE SET last_acked_at = excluded.last_acked_at, updated_at = excluded.updated_at",
                (doc, now, now),
            )
        return removed

    def discard(self, doc: str, seqs: list[int]) -> int:
        """Drop outbox rows the relay already holds (its state vector covers them)."""
        if not seqs:
            return 0
        with self._errors("discard"), self._write() as db:
            return db.executemany("DELETE FROM outbox WHERE doc = ? AND seq = ?", [(doc, s) for s in seqs]).rowcount

    # -- what the syncing process reports ------------------------------------------

    def set_sync_state(self, doc: str, status: str, *, error: str | None, leader: str | None) -> None:
        now = time.time()
        with self._errors("write sync state"), self._write() as db:
            db.execute(
                "INSERT INTO sync_state (doc, status, error, leader, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(doc) DO UPDATE SET status = excluded.status, error = excluded.error, "
                "leader = excluded.leader, updated_at = excluded.updated_at",
                (doc, status, error, leader, now),
            )

    def sync_state(self, doc: str) -> SyncState | None:
        with self._errors("read sync state"):
            row = self._db.execute(
                "SELECT doc, status, last_acked_at, error, leader, updated_at FROM sync_state WHERE doc = ?", (doc,)
            ).fetchone()
        return None if row is None else SyncState(*row)

    def documents(self) -> list[DocSummary]:
        """Every document this data directory holds, with its pending count and sync state."""
        with self._errors("list documents"), self._read() as db:
            names = [r[0] for r in db.execute(
                "SELECT doc FROM updates UNION SELECT doc FROM snapshots UNION SELECT doc FROM outbox "
                "UNION SELECT doc FROM sync_state ORDER BY 1"
            )]
            counts = dict(db.execute("SELECT doc, COUNT(*) FROM outbox GROUP BY doc").fetchall())
        return [DocSummary(name, int(counts.get(name, 0)), self.sync_state(name)) for name in names]
