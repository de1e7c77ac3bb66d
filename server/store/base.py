"""The store's protocols, which every backend (SQLite, PostgreSQL) implements.

:class:`DocumentLog` is what the relay's rooms need: per document name, an append log of
Yjs updates (the exact v1 bytes a peer sent), at most one snapshot that folds a prefix of
that log, and the writer bound to each client ID. Sequence numbers come from the store,
increase strictly across the whole store, and are the only order: never wall-clock time.
Beside the log, and written in the same transaction as an append where they must commit
with it, each backend keeps :class:`ChangeFeed`, :class:`Receipts`, :class:`Catalog` and
:class:`AccessLog`.

Durability contract: :meth:`DocumentLog.append` returns only once the update is
committed to stable storage, so a relay may acknowledge it to its sender.
Concurrent appends share transactions (group commit).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class StoreError(Exception):
    """Base class of store failures."""


class StoreUnavailable(StoreError):
    """Raised when the store cannot be reached or written. What was being written is not
    committed, except when the link broke during its COMMIT: then its outcome is unknown
    (PostgreSQL may have committed it), and a reader finds out by reading the store again."""


class StoreCorrupt(StoreUnavailable):
    """Raised when a store file exists but is damaged or not a database; nothing was opened."""


class StoreLocked(StoreUnavailable):
    """Raised when a store file is already open in another store that holds its lock (another
    relay's, or a second store on the same file in this very process); nothing was opened.

    ``path`` is the database file; ``pid`` the holder's process id as its lock file records
    it, or None when that cannot be read.
    """

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = "unknown" if pid is None else str(pid)
        super().__init__(f"{path} is in use by another store (pid {holder}); close that store first")
        self.path = path
        self.pid = pid


class ClientsBound(StoreError):
    """An append's :class:`Binding` found a client ID bound to another writer: the append was
    not stored (its claim was bound all the same). ``owners`` is the recorded owner of each
    client of the binding that has one."""

    def __init__(self, owners: dict[int, str]) -> None:
        super().__init__(f"client IDs bound to another writer: {sorted(owners)}")
        self.owners = owners


@dataclass(frozen=True)
class Binding:
    """The client IDs an append writes, for :meth:`DocumentLog.append` to bind with it.

    Each client of ``claim`` that has no owner yet is bound to ``owner``; each client of
    ``claim`` and ``check`` must then be bound to ``owner`` or to nobody, else the append is
    refused with :class:`ClientsBound`.
    """

    owner: str
    claim: tuple[int, ...]
    check: tuple[int, ...] = ()


@dataclass(frozen=True)
class StoredDoc:
    """What :meth:`Store.load` returns: a snapshot (or None) and the updates after it.

    ``updates`` are ``(seq, update)`` pairs in ascending ``seq`` order, all with
    ``seq > snapshot_seq``. ``snapshot_seq`` is 0 when there is no snapshot.
    """

    snapshot: bytes | None = None
    snapshot_seq: int = 0
    updates: list[tuple[int, bytes]] = field(default_factory=list)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, int, bytes]]) -> StoredDoc:
        """Build from ``(kind, seq, blob)`` rows: kind 0 is the snapshot, kind 1 a log row (in seq order)."""
        snapshot: bytes | None = None
        snapshot_seq = 0
        updates: list[tuple[int, bytes]] = []
        for kind, seq, blob in rows:
            if kind == 0:
                snapshot, snapshot_seq = bytes(blob), int(seq)
            else:
                updates.append((int(seq), bytes(blob)))
        return cls(snapshot=snapshot, snapshot_seq=snapshot_seq, updates=updates)

    @property
    def last_seq(self) -> int:
        return self.updates[-1][0] if self.updates else self.snapshot_seq


@dataclass(frozen=True)
class Change:
    """One row of the change feed: update ``seq`` changed ``doc``.

    Written in the transaction that stores the update, and kept (unlike the update
    itself, which compaction folds away) until pruned by age. ``at`` is the commit's
    wall-clock time in seconds since the epoch, for retention only, never for order.
    ``action`` names what a REST write did (``"cart.add_item"``); None for sync peers.
    """

    seq: int
    doc: str
    at: float
    action: str | None = None

    @property
    def tenant(self) -> str:
        return self.doc.split("/", 1)[0]


@dataclass(frozen=True)
class Receipt:
    """What an idempotent request left, kept under ``(tenant, key)``: the store never reads it.

    ``fingerprint`` identifies the request, so that a reused key with another request can be
    refused; ``record`` is the writer's own bytes (the REST adapter's encoded reply);
    ``created_at`` is when it was kept, in seconds since the epoch, for pruning.
    """

    tenant: str
    key: str
    fingerprint: str
    record: bytes
    created_at: float = 0.0


@dataclass(frozen=True)
class Claim:
    """A request holding an idempotency key while it runs (see :meth:`Store.claim`).

    ``fingerprint`` identifies that request as :class:`Receipt`'s does;
    ``created_at`` is when it claimed the key, in seconds since the epoch.
    """

    tenant: str
    key: str
    fingerprint: str
    created_at: float


@dataclass(frozen=True)
class Price:
    """A trusted unit price in minor units (cents) and its ISO 4217 currency."""

    unit_price: int
    currency: str


class DocumentLog(Protocol):
    """The document log: per document, an append log of Yjs updates and at most one snapshot,
    and the writer bound to each Yjs client ID. All the relay's rooms need of a store."""

    async def append(
        self, doc: str, update: bytes, *, action: str | None = None, receipt: Receipt | None = None,
        binding: Binding | None = None,
    ) -> int:
        """Durably append ``update`` to ``doc``'s log; return its sequence number.

        The same transaction adds the update's :class:`Change` (with ``action``) and,
        if given, ``receipt`` (unless a receipt is already kept under its key), so an
        idempotent write and its receipt commit together or not at all. With a ``binding``,
        its claim is bound as :meth:`bind_clients` binds it (durably, before returning), and
        the append is refused with :class:`ClientsBound`, none of its rows stored, if a client
        of the binding is bound to another writer: a writer's first update and its claim can
        share one commit.

        Raises :class:`StoreUnavailable` if the store is not open or the commit failed;
        then nothing of the transaction this update shared was stored.
        """
        ...

    async def load(self, doc: str) -> StoredDoc:
        """The latest snapshot of ``doc`` and every update after it (empty if unknown)."""
        ...

    async def updates_after(self, doc: str, after_seq: int, limit: int) -> list[tuple[int, bytes]] | None:
        """Up to ``limit`` of ``doc``'s log rows with ``seq > after_seq`` as ``(seq, update)``, in seq
        order; None when compaction folded some of them into a snapshot (its seq is above
        ``after_seq``), so the updates after that point can no longer be told apart."""
        ...

    async def compact(self, doc: str, snapshot: bytes, through_seq: int) -> None:
        """Atomically replace ``doc``'s snapshot and log rows with ``seq <= through_seq``
        by ``snapshot``; a crash leaves either the old rows or the snapshot, never neither.
        Rows with a larger ``seq`` (appended meanwhile) are kept.

        ``snapshot`` must hold at least every update of ``doc`` with ``seq <= through_seq``.
        Does nothing if ``doc`` already has a snapshot at ``through_seq`` or later (so a
        repeated or late compaction is harmless). Raises ``ValueError`` if ``through_seq``
        is below 1 or above the largest seq the store has assigned."""
        ...

    async def check(self) -> None:
        """Raise :class:`StoreUnavailable` unless the store is open and writable."""
        ...

    async def documents(self, prefix: str = "", *, after: str = "", limit: int | None = None) -> list[str]:
        """Names of the documents with a snapshot or log rows that start with ``prefix`` and
        sort after ``after``, sorted; at most ``limit`` of them."""
        ...

    async def bind_clients(self, doc: str, owner: str, claim: Iterable[int], check: Iterable[int]) -> dict[int, str]:
        """Who may write each Yjs clientID of ``doc``: bind every client of ``claim`` that has
        no owner yet to ``owner`` (durably, before returning), then return the recorded owner
        of every client of ``claim`` and ``check`` that has one. Of concurrent claims of one
        client, on any node, exactly one wins and every caller sees the winner."""
        ...


class ChangeFeed(Protocol):
    """The change feed kept beside the log: one row per stored update, kept until pruned by age."""

    async def changes_since(self, tenant: str, after_seq: int, limit: int) -> list[Change]:
        """Up to ``limit`` changes of ``tenant``'s documents with ``seq > after_seq``, in seq order."""
        ...

    async def head(self) -> int:
        """The largest seq of any committed change (0 when there is none)."""
        ...

    async def feed_floor(self) -> int:
        """The largest seq pruned from the change feed (0 if nothing was pruned): a reader
        resuming below it may have missed changes."""
        ...

    async def epochs(self) -> list[tuple[int, str]]:
        """The change feed's epochs as ``(first_seq, epoch)``, in seq order (never empty once open).

        Each opening of the store starts a new epoch (a random id) at the next seq, so an
        epoch and a seq in its range name one history: a new store, or a copy restored from
        a backup, continues under an epoch that no earlier reader has seen."""
        ...

    async def prune_changes(self, before: float) -> int:
        """Delete the change rows committed before ``before`` (seconds since the epoch), by seq so
        the feed stays a gapless suffix, and raise the floor to the last one; return how many."""
        ...


class Receipts(Protocol):
    """Idempotency receipts: the first response to a request under its key, and the claims of
    requests still running."""

    async def recall(self, tenant: str, key: str) -> Receipt | None:
        """The response kept under ``(tenant, key)``, if any."""
        ...

    async def remember(self, receipt: Receipt) -> Receipt:
        """Keep ``receipt`` unless one is already kept under its key; return the kept one."""
        ...

    async def claim(
        self, tenant: str, key: str, fingerprint: str, holder: str, *, expire_after: float
    ) -> Receipt | Claim | None:
        """Claim ``(tenant, key)`` for a request about to run; ``holder`` names this attempt.

        Returns the response kept under the key (the caller replays it; nothing is claimed),
        or the :class:`Claim` of another request still holding the key, or None: the caller
        holds the key until it calls :meth:`release`. A claim older than ``expire_after``
        seconds is taken over (its holder is presumed dead). Every relay sharing the store
        sees the same claims, so one key runs once across them.
        """
        ...

    async def release(self, tenant: str, key: str, holder: str) -> None:
        """Drop ``holder``'s claim on ``(tenant, key)`` (a claim taken over by another is left)."""
        ...

    async def prune_receipts(self, before: float) -> int:
        """Delete the receipts (and expired claims) kept before ``before``; return how many receipts."""
        ...


class Catalog(Protocol):
    """The price catalog the REST adapter prices carts from."""

    async def prices(self, tenant: str, products: Iterable[str]) -> dict[str, Price]:
        """The catalog prices of those ``products`` that have one."""
        ...

    async def catalog(self, tenant: str) -> dict[str, Price]:
        """Every price of ``tenant``'s catalog."""
        ...

    async def put_prices(self, tenant: str, prices: Mapping[str, Price], *, replace: bool) -> int:
        """Set ``tenant``'s catalog prices (all of them when ``replace``) in one transaction;
        return the number of products written."""
        ...


@dataclass(frozen=True)
class Access:
    """When ``doc`` was last accessed (seconds since the epoch), and whether a guest session made it."""

    doc: str
    last_accessed_at: float
    guest: bool = False


class AccessLog(Protocol):
    """When each document was last accessed, kept beside the log for cart lifetimes; and the
    deletion of a whole document (abandoned guest carts)."""

    async def touch(self, accesses: Mapping[str, float], *, guest: bool = False) -> None:
        """Record each document's access at its time (a time earlier than the kept one changes
        nothing), in one transaction; ``guest`` marks them as guest carts (it is never unmarked)."""
        ...

    async def accessed(self, docs: Iterable[str]) -> dict[str, Access]:
        """The kept access of each of ``docs`` that has one."""
        ...

    async def idle_guests(self, before: float, limit: int) -> list[str]:
        """Up to ``limit`` guest documents last accessed before ``before``, longest idle first."""
        ...

    async def delete_document(self, doc: str) -> None:
        """Delete ``doc``'s snapshot, log rows, client owners and access, in one transaction (its
        change-feed rows stay until pruned by age)."""
        ...


class Store(DocumentLog, ChangeFeed, Receipts, Catalog, AccessLog, Protocol):
    """Everything a store backend implements (SQLite, PostgreSQL): the five protocols above, plus
    the async context manager that opens and closes it. Each consumer asks only for the protocol
    it uses: rooms a :class:`DocumentLog`, the feed a :class:`ChangeFeed`, the REST adapter
    :class:`Receipts` and a :class:`Catalog`."""
