"""The SQLite store's access log (the :class:`~syncline.server.store.base.AccessLog` protocol):
``doc_access(doc, last_accessed_at, guest)`` (schema version 5), and whole-document deletion.

A mixin of :class:`~syncline.server.store.sqlite.SQLiteStore`, as :mod:`.sqlite_tables` is.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .base import Access

_CHUNK = 500


class SQLiteAccess:
    """Document accesses and deletion on the store's connections."""

    async def _read(self, sql: str, params: dict[str, object] | tuple[object, ...]) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def _transact(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        raise NotImplementedError

    async def touch(self, accesses: Mapping[str, float], *, guest: bool = False) -> None:
        """Record each document's access at its time (never moving one back); ``guest`` marks them."""
        rows = [(doc, float(at), int(guest)) for doc, at in sorted(accesses.items())]
        if not rows:
            return

        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT INTO doc_access (doc, last_accessed_at, guest) VALUES (?, ?, ?)"
                " ON CONFLICT (doc) DO UPDATE SET"
                " last_accessed_at = max(last_accessed_at, excluded.last_accessed_at),"
                " guest = max(guest, excluded.guest)",
                rows,
            )

        await self._transact(work)

    async def accessed(self, docs: Iterable[str]) -> dict[str, Access]:
        """The kept access of each of ``docs`` that has one."""
        wanted = sorted(set(docs))
        found: dict[str, Access] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start:start + _CHUNK]
            rows = await self._read(
                "SELECT doc, last_accessed_at, guest FROM doc_access WHERE doc IN ({})".format(",".join("?" * len(chunk))),
                tuple(chunk),
            )
            found.update((str(doc), Access(str(doc), float(at), bool(guest))) for doc, at, guest in rows)
        return found

    async def idle_guests(self, before: float, limit: int) -> list[str]:
        """Up to ``limit`` guest documents last accessed before ``before``, longest idle first."""
        rows = await self._read(
            "SELECT doc FROM doc_access WHERE guest = 1 AND last_accessed_at < ? ORDER BY last_accessed_at LIMIT ?",
            (before, limit),
        )
        return [str(row[0]) for row in rows]

    async def delete_document(self, doc: str) -> None:
        """Delete ``doc``'s snapshot, log rows, client owners and access in one transaction."""

        def work(db: sqlite3.Connection) -> None:
            for table in ("updates", "snapshots", "client_owners", "doc_access"):
                db.execute(f"DELETE FROM {table} WHERE doc = ?", (doc,))

        await self._transact(work)
