"""The sample prices of tenant ``demo``: what the storefront demo at ``/demo/`` sells."""

from __future__ import annotations

import logging

from syncline.server.store import Catalog, Price

DEMO_TENANT = "demo"
DEMO_PRICES = {
    "tee": Price(1299, "EUR"),
    "mug": Price(850, "EUR"),
    "cap": Price(1500, "EUR"),
    "sock": Price(499, "EUR"),
}

log = logging.getLogger("syncline.app")


async def seed_demo_catalog(store: Catalog) -> bool:
    """Give tenant ``demo`` :data:`DEMO_PRICES` unless it has a catalog; True if it was seeded."""
    if await store.catalog(DEMO_TENANT):
        return False
    await store.put_prices(DEMO_TENANT, DEMO_PRICES, replace=False)
    log.info("gave tenant %r the demo catalog (%s)", DEMO_TENANT, ", ".join(DEMO_PRICES))
    return True
