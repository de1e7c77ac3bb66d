"""What a change meant: the typed events engine/changes.py derives from the update bytes alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pycrdt import Doc

from syncline.engine import Cart
from syncline.engine.changes import ChangeTracker, FeedChange
from syncline.engine.order import Order, OrderLine
from syncline.engine.stock import StockLedger

from .helpers import copy_doc


def edit(doc: Doc, change: Callable[[], Any]) -> bytes:
    """The update bytes one edit of ``doc`` produced."""
    before = doc.get_state()
    change()
    return doc.get_update(before)


def types(changes: tuple[FeedChange, ...]) -> list[str]:
    return [change.type for change in changes]


def test_cart_changes_name_each_line_with_previous_and_new_quantity_and_the_status_move() -> None:
    cart = Cart.new("c1", client_id=1)
    tracker = ChangeTracker("cart", "c1")
    tee_update = edit(cart.doc, lambda: cart.add_item("tee", 2))
    [added] = tracker.apply(tee_update)
    tee = cart.lines()[0].key
    assert added.type == "cart.changed"
    assert added.fields["lines"] == [{"key": tee, "product": "tee", "attributes": {}, "previous": 0, "quantity": 2}]
    assert "status" not in added.fields
    assert tracker.apply(tee_update) == ()  # delivered twice: nothing new

    mug: list[str] = []
    [both] = tracker.apply(edit(cart.doc, lambda: (cart.set_quantity(tee, 5), mug.append(cart.add_item("mug")))))
    assert {(line["key"], line["previous"], line["quantity"]) for line in both.fields["lines"]} == {
        (tee, 2, 5), (mug[0], 0, 1)}
    [removed] = tracker.apply(edit(cart.doc, lambda: cart.remove_line(tee)))
    assert [(line["previous"], line["quantity"]) for line in removed.fields["lines"]] == [(5, 0)]
    [closed] = tracker.apply(edit(cart.doc, lambda: cart.check_out("o-1", at=1_700_000_000_000)))
    assert closed.fields == {"lines": [], "status": {
        "state": "checked_out", "order": "o-1", "checked_out_at": 1_700_000_000_000, "previous": "open"}}
    assert tracker.summary()["lines"][0]["key"] == mug[0]


def test_order_changes_report_creation_stage_payment_and_cancellation_with_who_and_when() -> None:
    order = Order.new("o-1", client_id=2)
    tracker = ChangeTracker("order", "o-1")
    line = OrderLine("k1", "tee", {}, 2, 1500, 3000)
    [created] = tracker.apply(edit(order.doc, lambda: order.place(
        cart="c1", location="north", currency="EUR", lines=[line], by="till", at=1)))
    assert created.type == "order.created"
    assert (created.fields["total"], created.fields["stage"], created.fields["payment"]) == (3000, "placed", "pending")
    [moved] = tracker.apply(edit(order.doc, lambda: order.advance("preparing", by="cook", at=2)))
    assert (moved.type, moved.fields["previous"], moved.fields["stage"]) == ("order.stage_changed", "placed", "preparing")
    assert (moved.fields["by"], moved.fields["moved_at"]) == ("cook", 2)
    [paid] = tracker.apply(edit(order.doc, lambda: order.record_payment("paid", by="psp", at=3)))
    assert (paid.type, paid.fields["previous"], paid.fields["payment"]) == ("order.payment_changed", "pending", "paid")
    [cancelled] = tracker.apply(edit(order.doc, lambda: order.cancel(by="manager", note="no stock", at=4)))
    assert (cancelled.type, cancelled.fields["previous"], cancelled.fields["note"]) == (
        "order.cancelled", "preparing", "no stock")

    # A replica that receives the whole history in one update hears all of it, in order.
    late = ChangeTracker("order", "o-1")
    assert types(late.apply(order.doc.get_update())) == ["order.created", "order.cancelled", "order.payment_changed"]


def test_stock_changes_report_levels_per_sku_and_conflicts_opened_and_resolved() -> None:
    ledger = StockLedger.new("north", client_id=3)
    tracker = ChangeTracker("stock", "north")
    [level] = tracker.apply(edit(ledger.doc, lambda: ledger.record("a1", "tee", 2, reason="restock", actor="x")))
    assert level.fields == {"sku": "tee", "location": "north", "previous": 0, "level": 2, "refs": []}

    # Two tills sell the last two concurrently with a third sale: the level goes to -1.
    till = StockLedger(copy_doc(ledger.doc, 4), "north")
    first = edit(ledger.doc, lambda: ledger.record("s1", "tee", -2, reason="sale", actor="t1", ref="o-1"))
    second = edit(till.doc, lambda: till.record("s2", "tee", -1, reason="sale", actor="t2", ref="o-2"))
    [sold] = tracker.apply(first)
    assert (sold.fields["previous"], sold.fields["level"], sold.fields["refs"]) == (2, 0, ["o-1"])
    oversold = tracker.apply(second)
    assert types(oversold) == ["stock.level_changed", "stock.conflict_opened"]
    opened = oversold[1].fields
    assert (opened["conflict_kind"], opened["sku"], opened["level"], opened["adjustments"]) == (
        "negative_level", "tee", -1, ["s1", "s2"])

    ledger.doc.apply_update(second)
    resolution = edit(ledger.doc, lambda: ledger.resolve(opened["conflict"], "compensate", actor="boss"))
    resolved = tracker.apply(resolution)
    assert types(resolved) == ["stock.level_changed", "stock.conflict_resolved"]
    assert resolved[1].fields["conflict"] == opened["conflict"]
    assert resolved[1].fields["cleared"] is False
    assert resolved[1].fields["resolution"]["strategy"] == "compensate"
    assert tracker.summary() == {"levels": {"tee": 0}, "conflicts": []}


def test_a_tracker_loaded_to_a_point_reports_only_what_follows() -> None:
    cart = Cart.new("c2", client_id=5)
    first = edit(cart.doc, lambda: cart.add_item("tee", 1))
    tracker = ChangeTracker("cart", "c2")
    tracker.load(first)
    [change] = tracker.apply(edit(cart.doc, lambda: cart.add_item("tee", 1)))
    assert [(line["previous"], line["quantity"]) for line in change.fields["lines"]] == [(1, 2)]
