"""The store interface every backend implements (SQLite now, PostgreSQL later).

A store keeps, per document name, an append log of Yjs updates (the exact v1
bytes a peer sent) and at most one snapshot that folds a prefix of that log.
Sequence numbers come from the store, increase strictly across the whole store,
and are the only order: never wall-clock time.

Durability contract: :meth:`Store.append` returns only once the update is
committed to stable storage, so a relay may acknowledge it to its sender.
Concurrent appends share transactions (group commit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class StoreError(Exception):
    """Base class of store failures."""


class StoreUnavailable(StoreError):
    """Raised when the store cannot be reached or written; nothing was committed."""


@dataclass(frozen=True)
class StoredDoc:
    """What :meth:`Store.load` returns: a snapshot (or None) and the updates after it.

    ``updates`` are ``(seq, update)`` pairs in ascending ``seq`` order, all with
    ``seq > snapshot_seq``. ``snapshot_seq`` is 0 when there is no snapshot.
    """

    snapshot: bytes | None = None
    snapshot_seq: int = 0
    updates: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def last_seq(self) -> int:
        return self.updates[-1][0] if self.updates else self.snapshot_seq


class Store(Protocol):
    """Five methods, plus the async context manager that opens and closes the store."""

    async def append(self, doc: str, update: bytes) -> int:
        """Durably append ``update`` to ``doc``'s log; return its sequence number.

        Raises :class:`StoreUnavailable` if the store is not open or the commit failed;
        then nothing of the transaction this update shared was stored.
        """
        ...

    async def load(self, doc: str) -> StoredDoc:
        """The latest snapshot of ``doc`` and every update after it (empty if unknown)."""
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

    async def documents(self) -> list[str]:
        """Names of every document with a snapshot or log rows, sorted."""
        ...
