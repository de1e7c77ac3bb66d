"""Views of a document subscribe nothing of their own: building many costs edits nothing, and
dropping them (and the document) frees them."""

from __future__ import annotations

import gc
import statistics
import time
import weakref

from pycrdt import Doc, Text

from syncline.engine.cart import Cart
from syncline.engine.order import Order
from syncline.engine.stock import StockLedger

VIEWS = 50_000

def _edit_seconds(cart: Cart, rounds: int = 300) -> float:
    """The median time of one edit (an add, one Yjs transaction) on ``cart``'s document."""
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        cart.add_item(f"p-{i % 7}", 1)
        times.append(time.perf_counter() - start)
    return statistics.median(times)

def test_an_edit_costs_the_same_after_fifty_thousand_views_of_its_document() -> None:
    doc = Doc()
    cart = Cart(doc, "c-1")
    _edit_seconds(cart, 50)  # warm up
    alone = _edit_seconds(cart)
    views = [Cart(doc, "c-1") if n % 2 else StockLedger(doc, "loc-1") for n in range(VIEWS)]
    crowded = _edit_seconds(cart)
    assert len(views) == VIEWS
    # With one observer per view, an edit called 50,000 callbacks (84 ms instead of 34 µs).
    assert crowded < 3 * alone, f"one edit took {crowded * 1e6:.0f} µs after {VIEWS} views, {alone * 1e6:.0f} µs before"

def test_views_of_one_document_see_each_others_edits() -> None:
    doc = Doc()
    first, second = Cart(doc, "c-1"), Cart(doc, "c-1")
    assert second.view().lines == ()
    key = first.add_item("sku-1", 2)
    assert [(line.key, line.quantity) for line in second.view().lines] == [(key, 2)]
    first.set_quantity(key, 5)
    assert [line.quantity for line in second.view().lines] == [5]
    ledger, other = StockLedger(doc, "loc-1"), StockLedger(doc, "loc-1")
    assert other.level("sku-1") == 0
    ledger.record("adj-1", "sku-1", 4, reason="restock", actor="till-1")
    assert other.level("sku-1") == 4

def test_dropped_views_and_their_document_are_garbage_collected() -> None:
    doc = Doc()
    views: list[object] = [Cart(doc, "c-1"), StockLedger(doc, "loc-1"), Order(doc, "o-1")]
    Cart(doc, "c-1").add_item("sku-1", 1)
    refs = [weakref.ref(view) for view in views] + [weakref.ref(doc)]
    del views, doc
    gc.collect()
    assert [ref() for ref in refs] == [None] * len(refs)

def test_a_document_read_through_many_views_is_freed_with_its_memory() -> None:
    before = _rss_mib()
    for n in range(300):
        doc = Doc()
        cart = Cart(doc, f"c-{n}")
        cart.add_item("sku-1", 1)
        doc["pad"] = Text("x" * 50_000)  # a root no view reads, to give the document weight
        for _ in range(5):
            assert Cart(doc, f"c-{n}").view().lines
            StockLedger(doc, "loc-1").levels()
    gc.collect()
    grown = _rss_mib() - before
    # 300 documents of 50 kB each: 15 MiB if none were freed.
    assert grown < 5, f"RSS grew {grown:.1f} MiB"

def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20
