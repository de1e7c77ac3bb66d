"""The SQLite store's tables beside the document log: the change feed, receipts and
claims, client owners and prices (the :class:`~syncline.server.store.base.ChangeFeed`,
``Receipts`` and ``Catalog`` protocols).

A mixin of :class:`~syncline.server.store.sqlite.SQLiteStore`: reads go through its
reader connection (``_read``), writes through its single writer task (``_transact``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from . import sqlite_sql as litesql
from .base import Change, Claim, Price, Receipt
from .records import receipt_from_row, receipt_row


class SQLiteTables:
    """Feed, receipts, claims, owners and prices on the store's connections."""

    _claims: dict[tuple[str, str], tuple[Claim, str]]  # (tenant, key) -> (claim, holder)

    async def _read(self, sql: str, params: dict[str, object] | tuple[object, ...]) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def _transact(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        raise NotImplementedError

    async def changes_since(self, tenant: str, after_seq: int, limit: int) -> list[Change]:
        """Up to ``limit`` changes of ``tenant``'s documents after ``after_seq``, in seq order."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        rows = await self._read(
            "SELECT seq, doc, at, action FROM changes WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?",
            (tenant, after_seq, limit),
        )
        return [Change(int(seq), str(doc), float(at), None if action is None else str(action))
                for seq, doc, at, action in rows]

    async def head(self) -> int:
        """The largest seq of any committed change (0 when there is none)."""
        rows = await self._read("SELECT coalesce(max(seq), 0) FROM changes", {})
        return int(rows[0][0])

    async def feed_floor(self) -> int:
        """The largest seq pruned from the change feed (0 if nothing was pruned)."""
        rows = await self._read("SELECT value FROM meta WHERE key = 'feed_floor'", {})
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    async def epochs(self) -> list[tuple[int, str]]:
        """The change feed's epochs, ``(first_seq, epoch)`` in seq order; one more per opening."""
        rows = await self._read("SELECT first_seq, epoch FROM epochs ORDER BY first_seq", {})
        return [(int(first), str(epoch)) for first, epoch in rows]

    async def prune_changes(self, before: float) -> int:
        """Delete the change-feed rows committed before ``before``; return how many."""

        def work(db: sqlite3.Connection) -> int:
            row = db.execute("SELECT max(seq) FROM changes WHERE at < ?", (before,)).fetchone()
            if row is None or row[0] is None:
                return 0
            # By seq, not by time: the feed must stay a gapless suffix above its floor.
            floor = int(row[0])
            pruned = db.execute("DELETE FROM changes WHERE seq <= ?", (floor,)).rowcount
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('feed_floor', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = max(coalesce(value, 0), excluded.value)",
                (floor,),
            )
            return int(pruned)

        pruned: int = await self._transact(work)
        return pruned

    async def prune_receipts(self, before: float) -> int:
        """Delete the receipts kept before ``before``; return how many."""

        def work(db: sqlite3.Connection) -> int:
            return int(db.execute("DELETE FROM responses WHERE created_at < ?", (before,)).rowcount)

        pruned: int = await self._transact(work)
        return pruned

    async def recall(self, tenant: str, key: str) -> Receipt | None:
        """The response kept under ``(tenant, key)``, if any."""
        rows = await self._read(litesql.SELECT_RESPONSE, (tenant, key))
        if not rows:
            return None
        tenant_, key_, fingerprint, record, created_at = rows[0]
        return receipt_from_row(str(tenant_), str(key_), str(fingerprint), bytes(record), float(created_at))

    async def remember(self, receipt: Receipt) -> Receipt:
        """Keep ``receipt`` unless one is already kept under its key; return the kept one."""
        row = receipt_row(receipt)

        def work(db: sqlite3.Connection) -> Receipt:
            db.execute(litesql.INSERT_RESPONSE, row)
            kept = db.execute(litesql.SELECT_RESPONSE, (receipt.tenant, receipt.key)).fetchone()
            return receipt_from_row(str(kept[0]), str(kept[1]), str(kept[2]), bytes(kept[3]), float(kept[4]))

        kept: Receipt = await self._transact(work)
        return kept

    async def claim(
        self, tenant: str, key: str, fingerprint: str, holder: str, *, expire_after: float
    ) -> Receipt | Claim | None:
        """Claim ``(tenant, key)`` for a request about to run (see the Store protocol).

        Claims live in this object, not in the file: the file has one relay, so a claim
        can only be held by a request of this process, and one left by a killed process
        must not outlive it.
        """
        slot = (tenant, key)
        held = self._claims.get(slot)
        now = time.time()
        if held is not None and held[0].created_at >= now - expire_after:
            return await self.recall(tenant, key) or held[0]  # answered, its release still on its way
        self._claims[slot] = (Claim(tenant, key, fingerprint, now), holder)  # before any await
        try:
            kept = await self.recall(tenant, key)
        except BaseException:
            await self.release(tenant, key, holder)
            raise
        if kept is not None:
            await self.release(tenant, key, holder)
        return kept

    async def release(self, tenant: str, key: str, holder: str) -> None:
        """Drop ``holder``'s claim on ``(tenant, key)``, if it still holds it."""
        held = self._claims.get((tenant, key))
        if held is not None and held[1] == holder:
            del self._claims[(tenant, key)]

    async def bind_clients(self, doc: str, owner: str, claim: Iterable[int], check: Iterable[int]) -> dict[int, str]:
        """Bind the unbound clients of ``claim`` to ``owner``; return the owner of each client of both."""
        claimed = tuple(claim)
        if not claimed:
            owners: dict[int, str] = {}
            for sql, params in _chunked_in(_SELECT_OWNERS, (doc,), sorted(set(check))):
                owners.update((int(client), str(who)) for client, who in await self._read(sql, params))
            return owners
        checked = tuple(check)
        bound: dict[int, str] = await self._transact(lambda db: bind_in(db, doc, owner, claimed, checked))
        return bound

    async def prices(self, tenant: str, products: Iterable[str]) -> dict[str, Price]:
        """The catalog prices of those ``products`` that have one."""
        found: dict[str, Price] = {}
        select = "SELECT product, unit_price, currency FROM prices WHERE tenant = ? AND product IN ({})"
        for sql, params in _chunked_in(select, (tenant,), sorted(set(products))):
            for product, unit_price, currency in await self._read(sql, params):
                found[str(product)] = Price(int(unit_price), str(currency))
        return found

    async def catalog(self, tenant: str) -> dict[str, Price]:
        """Every price of ``tenant``'s catalog."""
        rows = await self._read("SELECT product, unit_price, currency FROM prices WHERE tenant = ?", (tenant,))
        return {str(product): Price(int(unit_price), str(currency)) for product, unit_price, currency in rows}

    async def put_prices(self, tenant: str, prices: Mapping[str, Price], *, replace: bool) -> int:
        """Set ``tenant``'s catalog prices (all of them when ``replace``) in one transaction."""
        rows = [(tenant, product, price.unit_price, price.currency) for product, price in sorted(prices.items())]

        def work(db: sqlite3.Connection) -> int:
            if replace:
                db.execute("DELETE FROM prices WHERE tenant = ?", (tenant,))
            db.executemany(
                "INSERT INTO prices (tenant, product, unit_price, currency) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (tenant, product) DO UPDATE"
                " SET unit_price = excluded.unit_price, currency = excluded.currency",
                rows,
            )
            return len(rows)

        written: int = await self._transact(work)
        return written


_SELECT_OWNERS = "SELECT client, owner FROM client_owners WHERE doc = ? AND client IN ({})"


def _chunked_in(select: str, head: tuple[object, ...], values: list[Any]) -> Iterator[tuple[str, tuple[object, ...]]]:
    """``select`` (ending in ``IN ({})``) once per chunk of ``values``, far below SQLite's parameter limit."""
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        yield select.format(",".join("?" * len(chunk))), (*head, *chunk)


def bind_in(db: sqlite3.Connection, doc: str, owner: str, claim: Iterable[int], check: Iterable[int]) -> dict[int, str]:
    """On the writer connection, in its transaction: bind the unbound clients of ``claim`` to
    ``owner``; return the owner of each client of ``claim`` and ``check`` that has one."""
    claimed = sorted(set(claim))
    db.executemany(
        "INSERT INTO client_owners (doc, client, owner) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        [(doc, client, owner) for client in claimed],
    )
    owners: dict[int, str] = {}
    for sql, params in _chunked_in(_SELECT_OWNERS, (doc,), sorted(set(claimed) | set(check))):
        owners.update((int(client), str(who)) for client, who in db.execute(sql, params))
    return owners
