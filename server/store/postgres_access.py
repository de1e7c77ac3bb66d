"""The PostgreSQL store's access log (the :class:`~syncline.server.store.base.AccessLog` protocol):
``doc_access(doc, last_accessed_at, guest)`` (PostgreSQL schema version 5), and whole-document deletion.

A mixin of :class:`~syncline.server.store.postgres.PostgresStore`: reads through its
``_fetch``, writes through ``_transact`` (each its own transaction on the pool).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import asyncpg

from .base import Access


class PostgresAccess:
    """Document accesses and deletion on the store's pool."""

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        raise NotImplementedError

    async def _transact(self, work: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        raise NotImplementedError

    async def touch(self, accesses: Mapping[str, float], *, guest: bool = False) -> None:
        """Record each document's access at its time (never moving one back); ``guest`` marks them."""
        items = sorted(accesses.items())  # one lock order for concurrent touches of several nodes
        if not items:
            return

        async def work(con: asyncpg.Connection) -> None:
            await con.execute(
                "INSERT INTO doc_access (doc, last_accessed_at, guest)"
                " SELECT t.doc, t.at, $3 FROM unnest($1::text[], $2::double precision[]) AS t(doc, at)"
                " ON CONFLICT (doc) DO UPDATE SET"
                " last_accessed_at = greatest(doc_access.last_accessed_at, excluded.last_accessed_at),"
                " guest = doc_access.guest OR excluded.guest",
                [doc for doc, _ in items], [float(at) for _, at in items], guest,
            )

        await self._transact(work)

    async def accessed(self, docs: Iterable[str]) -> dict[str, Access]:
        """The kept access of each of ``docs`` that has one."""
        rows = await self._fetch(
            "SELECT doc, last_accessed_at, guest FROM doc_access WHERE doc = ANY($1::text[])", sorted(set(docs)))
        return {str(row[0]): Access(str(row[0]), float(row[1]), bool(row[2])) for row in rows}

    async def idle_guests(self, before: float, limit: int) -> list[str]:
        """Up to ``limit`` guest documents last accessed before ``before``, longest idle first."""
        rows = await self._fetch(
            "SELECT doc FROM doc_access WHERE guest AND last_accessed_at < $1 ORDER BY last_accessed_at LIMIT $2",
            before, limit,
        )
        return [str(row[0]) for row in rows]

    async def delete_document(self, doc: str) -> None:
        """Delete ``doc``'s snapshot, log rows, client owners and access in one transaction."""

        async def work(con: asyncpg.Connection) -> None:
            for table in ("updates", "snapshots", "client_owners", "doc_access"):
                await con.execute(f"DELETE FROM {table} WHERE doc = $1", doc)

        await self._transact(work)
