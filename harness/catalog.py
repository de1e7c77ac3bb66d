"""A price catalog for tests and benchmarks, written into a relay's store file as the CLI does."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio

from syncline.server.relay import STORE_FILE
from syncline.server.store import Price
from syncline.server.store.sqlite import SQLiteStore

CATALOG = {"currency": "EUR", "prices": {"tee": 1299, "mug": 450, "cap": 999, "sock": 300}}


def load_catalog(data_dir: Path, tenant: str, catalog: Mapping[str, Any]) -> None:
    """Give ``tenant`` the prices of ``catalog`` ({"currency": ..., "prices": {product: cents}}).

    Written as ``syncline catalog load`` writes them, through a store of its own on the file
    (beside a running relay, which holds the file's lock), in an event loop on a thread of its own.
    """
    currency = str(catalog["currency"])
    prices = {str(product): Price(int(cents), currency) for product, cents in catalog["prices"].items()}

    async def write() -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        store = SQLiteStore(data_dir / STORE_FILE)
        store.exclusive = False
        async with store:
            await store.put_prices(tenant, prices, replace=True)

    with ThreadPoolExecutor(1) as thread:  # a loop of its own, even when called from a test's loop
        thread.submit(anyio.run, write).result()
