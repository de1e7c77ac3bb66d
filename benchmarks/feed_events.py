"""Feed events benchmark: what deriving the typed events of one change costs, per change.

Run from the repository root::

    python -m benchmarks.feed_events            # a few seconds
    python -m benchmarks.feed_events --quick    # smoke run

Two documents are built edit by edit, each edit's update kept as the store would keep it:

- ``cart``: a cart of 600 operations (adds over 40 lines, every fifth a set-quantity);
- ``ledger``: a stock ledger of 1,000 adjustments over 50 skus (restocks and sales, so
  conflicts open along the way).

For each, two rows: ``engine`` applies every update to a :class:`ChangeTracker` and times
each ``apply`` (Yrs integration, the view after it, the comparison with the view before);
``deriver`` appends the updates to a SQLite store one by one and, after each, asks the
feed's :class:`FeedDeriver` for the events of that change, as a stream following the
document live does (the store read of ``updates_after`` included); its
``catch_up_ms_per_change`` is a reader resuming from the first change (one load, then
each change after the other). Latencies are per change; the last tenth of the changes shows
the cost at the document's full size. The write path pays none of this: a deriver runs only
while change-feed streams are open.

Results are printed and saved as JSON (default ``benchmarks/runs/feed_events.json``; summary in
``benchmarks/results/feed_events.json``).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
from pycrdt import Doc

from syncline.adapters.rest.feed_events import FeedDeriver
from syncline.engine import Cart
from syncline.engine.changes import ChangeTracker
from syncline.engine.stock import StockLedger
from syncline.server.store import Change
from syncline.server.store.sqlite import SQLiteStore

from . import common


def _updates(doc: Doc, edits: Sequence[Callable[[], object]]) -> list[bytes]:
    updates = []
    for edit in edits:
        before = doc.get_state()
        edit()
        updates.append(doc.get_update(before))
    return updates


def cart_updates(ops: int) -> list[bytes]:
    cart = Cart.new("bench", client_id=1)
    keys: list[str] = []

    def step(i: int) -> Callable[[], object]:
        if i % 5 == 4 and keys:
            return lambda: cart.set_quantity(keys[i % len(keys)], 1 + i % 7)
        return lambda: keys.append(cart.add_item(f"p{i % 40}", 1 + i % 3))

    return _updates(cart.doc, [step(i) for i in range(ops)])


def ledger_updates(adjustments: int) -> list[bytes]:
    ledger = StockLedger.new("north", client_id=2)

    def step(i: int) -> Callable[[], object]:
        delta = 7 if i % 3 == 0 else -3
        return lambda: ledger.record(f"a{i}", f"sku{i % 50}", delta, reason="sale" if delta < 0 else "restock",
                                     actor="bench", at=1_700_000_000_000 + i, ref=f"o{i}" if delta < 0 else None)

    return _updates(ledger.doc, [step(i) for i in range(adjustments)])


def engine_row(kind: str, doc_id: str, updates: list[bytes]) -> dict[str, Any]:
    tracker = ChangeTracker(kind, doc_id)
    seconds, events = [], 0
    for update in updates:
        started = time.perf_counter()
        events += len(tracker.apply(update))
        seconds.append(time.perf_counter() - started)
    return _row(seconds, events)


async def deriver_row(doc: str, updates: list[bytes], directory: Path) -> dict[str, Any]:
    """A stream following the document live: each change is derived right after it is stored."""
    async with SQLiteStore(directory / f"{doc.replace('/', '_')}.sqlite3", synchronous="NORMAL") as store:
        deriver = FeedDeriver(store)
        seconds, events = [], 0
        with deriver.streaming():
            for update in updates:
                seq = await store.append(doc, update)
                started = time.perf_counter()
                events += len(await deriver.events(Change(seq, doc, time.time())))
                seconds.append(time.perf_counter() - started)
        # A reader resuming from the first change: one load, then each change after the other.
        catch_up = FeedDeriver(store)
        first = seq - len(updates) + 1
        with catch_up.streaming():
            started = time.perf_counter()
            for caught in range(first, seq + 1):
                await catch_up.events(Change(caught, doc, time.time()))
            whole = time.perf_counter() - started
    return {**_row(seconds, events), "catch_up_ms_per_change": whole * 1000 / len(updates)}


def _row(seconds: list[float], events: int) -> dict[str, Any]:
    tail = seconds[-max(1, len(seconds) // 10):]
    return {
        "changes": len(seconds),
        "events": events,
        "per_change": common.percentiles(seconds, scale=1000, suffix="_ms"),
        "last_tenth": common.percentiles(tail, scale=1000, suffix="_ms"),
        "changes_per_second": len(seconds) / math.fsum(seconds),
    }


async def run(quick: bool) -> dict[str, Any]:
    cart_ops, adjustments = (120, 200) if quick else (600, 1000)
    cart, ledger = cart_updates(cart_ops), ledger_updates(adjustments)
    rows: dict[str, Any] = {}
    rows[f"cart-{cart_ops}/engine"] = engine_row("cart", "bench", cart)
    rows[f"ledger-{adjustments}/engine"] = engine_row("stock", "north", ledger)
    with tempfile.TemporaryDirectory() as directory:
        rows[f"cart-{cart_ops}/deriver"] = await deriver_row("t/cart/bench", cart, Path(directory))
        rows[f"ledger-{adjustments}/deriver"] = await deriver_row("t/stock/north", ledger, Path(directory))
    return {"machine": common.machine_info(), "rows": rows}


def main(argv: Sequence[str] | None = None) -> None:
    parser = common.parser("feed_events", __doc__, quick="smoke run: a 120-op cart and a 200-adjustment ledger")
    args = parser.parse_args(argv)
    results = anyio.run(run, args.quick)
    print(common.table(
        ["document/path", "changes", "events", "p50 ms", "p95 ms", "p50 ms, last tenth", "changes/s",
         "catch-up ms/change"],
        [[name, r["changes"], r["events"], r["per_change"]["p50_ms"], r["per_change"]["p95_ms"],
          r["last_tenth"]["p50_ms"], r["changes_per_second"], r.get("catch_up_ms_per_change")]
         for name, r in results["rows"].items()],
    ))
    common.save("feed_events", results, args.out)


if __name__ == "__main__":
    main()
