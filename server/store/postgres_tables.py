"""The PostgreSQL store's tables beside the document log and the feed: receipts and
claims (idempotency across nodes), client owners and prices (the ``Receipts`` and
``Catalog`` protocols of :mod:`~syncline.server.store.base`).

A mixin of :class:`~syncline.server.store.postgres.PostgresStore`: reads go through its
pool (``_fetch``), writes through a transaction of their own (``_transact``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import asyncpg

from . import postgres_sql as pgsql
from .base import Claim, Price, Receipt
from .records import receipt_from_row, receipt_row


def row_count(status: str) -> int:
    """The row count of a command tag such as ``DELETE 3``."""
    return int(status.rsplit(" ", 1)[-1])


def _receipt(row: asyncpg.Record) -> Receipt:
    tenant, key, fingerprint, record, created_at = row
    return receipt_from_row(str(tenant), str(key), str(fingerprint), bytes(record), float(created_at))


class PostgresTables:
    """Receipts, claims, owners and prices on the store's pool."""

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        raise NotImplementedError

    async def _transact(self, work: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        raise NotImplementedError

    async def prune_receipts(self, before: float) -> int:
        """Delete the receipts, and the claims of dead nodes, older than ``before``; return how many receipts."""

        async def work(con: asyncpg.Connection) -> int:
            status = await con.execute("DELETE FROM responses WHERE created_at < $1", before)
            await con.execute("DELETE FROM claims WHERE created_at < $1", before)
            return row_count(status)

        pruned: int = await self._transact(work)
        return pruned

    async def recall(self, tenant: str, key: str) -> Receipt | None:
        """The response kept under ``(tenant, key)``, if any."""
        rows = await self._fetch(pgsql.SELECT_RESPONSE, tenant, key)
        return _receipt(rows[0]) if rows else None

    async def remember(self, receipt: Receipt) -> Receipt:
        """Keep ``receipt`` unless one is already kept under its key; return the kept one."""
        row = receipt_row(receipt)

        async def work(con: asyncpg.Connection) -> Receipt:
            # Waits for a concurrent insert of the same key; the next statement then sees the winner.
            await con.execute(pgsql.INSERT_RESPONSE, *row)
            kept = await con.fetchrow(pgsql.SELECT_RESPONSE, receipt.tenant, receipt.key)
            assert kept is not None
            return _receipt(kept)

        kept: Receipt = await self._transact(work)
        return kept

    async def claim(
        self, tenant: str, key: str, fingerprint: str, holder: str, *, expire_after: float
    ) -> Receipt | Claim | None:
        """Claim ``(tenant, key)`` for a request about to run, for every node (see the Store protocol).

        One transaction: insert the claim row (or take over an expired one), then look for
        the kept response. Each statement sees what committed before it, and a response
        commits before its claim is released, so a caller that takes a released key sees
        that key's response and gives the claim back instead of running the request again.
        """

        async def work(con: asyncpg.Connection) -> Receipt | Claim | None:
            for _ in range(3):  # a claim released between two statements: look again
                taken = await con.fetchval(pgsql.TAKE_CLAIM, tenant, key, fingerprint, holder, expire_after)
                kept = await con.fetchrow(pgsql.SELECT_RESPONSE, tenant, key)
                if kept is not None:
                    if taken is not None:
                        await con.execute("DELETE FROM claims WHERE tenant = $1 AND key = $2 AND holder = $3",
                                          tenant, key, holder)
                    return _receipt(kept)
                if taken is not None:
                    return None
                other = await con.fetchrow(
                    "SELECT fingerprint, created_at FROM claims WHERE tenant = $1 AND key = $2", tenant, key
                )
                if other is not None:
                    return Claim(tenant, key, str(other[0]), float(other[1]))
            return Claim(tenant, key, fingerprint, time.time())  # the key keeps changing hands: busy

        outcome: Receipt | Claim | None = await self._transact(work)
        return outcome

    async def release(self, tenant: str, key: str, holder: str) -> None:
        """Drop ``holder``'s claim on ``(tenant, key)`` (a claim taken over by another is left)."""

        async def work(con: asyncpg.Connection) -> None:
            await con.execute("DELETE FROM claims WHERE tenant = $1 AND key = $2 AND holder = $3", tenant, key, holder)

        await self._transact(work)

    async def bind_clients(self, doc: str, owner: str, claim: Iterable[int], check: Iterable[int]) -> dict[int, str]:
        """Bind the unbound clients of ``claim`` to ``owner``; return the owner of each client of both."""
        claimed = sorted(set(claim))
        asked = sorted(set(claimed) | set(check))
        select = "SELECT client, owner FROM client_owners WHERE doc = $1 AND client = ANY($2::bigint[])"
        if not claimed:
            return {int(client): str(who) for client, who in await self._fetch(select, doc, asked)}

        async def work(con: asyncpg.Connection) -> dict[int, str]:
            # Waits for another node's concurrent claim of the same client; the select then sees the winner.
            await con.execute(
                "INSERT INTO client_owners (doc, client, owner) SELECT $1, c, $2 FROM unnest($3::bigint[]) AS c"
                " ON CONFLICT DO NOTHING",
                doc, owner, claimed,
            )
            return {int(client): str(who) for client, who in await con.fetch(select, doc, asked)}

        owners: dict[int, str] = await self._transact(work)
        return owners

    async def prices(self, tenant: str, products: Iterable[str]) -> dict[str, Price]:
        """The catalog prices of those ``products`` that have one."""
        rows = await self._fetch(
            "SELECT product, unit_price, currency FROM prices WHERE tenant = $1 AND product = ANY($2::text[])",
            tenant, sorted(set(products)),
        )
        return {str(product): Price(int(unit_price), str(currency)) for product, unit_price, currency in rows}

    async def catalog(self, tenant: str) -> dict[str, Price]:
        """Every price of ``tenant``'s catalog."""
        rows = await self._fetch("SELECT product, unit_price, currency FROM prices WHERE tenant = $1", tenant)
        return {str(product): Price(int(unit_price), str(currency)) for product, unit_price, currency in rows}

    async def put_prices(self, tenant: str, prices: Mapping[str, Price], *, replace: bool) -> int:
        """Set ``tenant``'s catalog prices (all of them when ``replace``) in one transaction."""
        items = sorted(prices.items())

        async def work(con: asyncpg.Connection) -> int:
            if replace:
                await con.execute("DELETE FROM prices WHERE tenant = $1", tenant)
            await con.execute(
                "INSERT INTO prices (tenant, product, unit_price, currency)"
                " SELECT $1, t.product, t.unit_price, t.currency"
                " FROM unnest($2::text[], $3::bigint[], $4::text[]) AS t(product, unit_price, currency)"
                " ON CONFLICT (tenant, product) DO UPDATE"
                " SET unit_price = excluded.unit_price, currency = excluded.currency",
                tenant, [p for p, _ in items], [v.unit_price for _, v in items], [v.currency for _, v in items],
            )
            return len(items)

        written: int = await self._transact(work)
        return written
