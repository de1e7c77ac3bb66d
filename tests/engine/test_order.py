"""Orders on one replica: placing, the stage machine, payments, refusals and foreign content."""

from __future__ import annotations

import pytest
from pycrdt import Array, Map
from syncline.engine import Order, OrderLine, OrderNotPlaced, TransitionRefused, ValidationError

TEE = OrderLine("k-tee", "tee", {"size": "M"}, 2, 1299, 2598)
MUG = OrderLine("k-mug", "mug", {}, 1, 850, 850)


def placed(**changes: object) -> Order:
    order = Order.new("o-1", client_id=7, clock=lambda: 1_000)
    arguments: dict[str, object] = {"cart": "c-1", "location": "north", "currency": "EUR", "lines": [TEE, MUG],
                                    "by": "till"}
    arguments.update(changes)
    assert order.place(**arguments)  # type: ignore[arg-type]
    return order


def test_a_placed_order_holds_its_priced_lines_and_total() -> None:
    view = placed().view()
    assert view.placed and (view.cart, view.location, view.currency) == ("c-1", "north", "EUR")
    assert view.lines == (TEE, MUG)
    assert view.total == 2598 + 850
    assert (view.stage, view.payment, view.trail) == ("placed", "pending", ())
    assert (view.placed_at, view.placed_by) == (1_000, "till")


def test_placing_twice_writes_nothing_the_second_time() -> None:
    order = placed()
    before = order.doc.get_update()
    assert not order.place(cart="c-2", location="south", currency="USD", lines=[MUG], by="other")
    assert order.doc.get_update() == before
    assert order.view().cart == "c-1"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"currency": "eur"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"lines": []}, "lines"),
        ({"lines": [OrderLine("k", "tee", {}, 2, 100, 201)]}, "lines[0].line_total"),
        ({"lines": [OrderLine("k", "tee", {}, 0, 100, 0)]}, "lines[0].quantity"),
        ({"lines": [OrderLine("k", "tee", {}, 1, -5, -5)]}, "lines[0].unit_price"),
        ({"lines": [OrderLine("k", "", {}, 1, 5, 5)]}, "lines[0].product"),
        ({"cart": ""}, "cart"),
        ({"by": "x" * 129}, "by"),
    ],
)
def test_a_bad_checkout_is_refused_and_writes_nothing(changes: dict[str, object], field: str) -> None:
    order = Order.new("o-1", client_id=7)
    arguments: dict[str, object] = {"cart": "c-1", "location": "north", "currency": "EUR", "lines": [TEE],
                                    "by": "till"}
    arguments.update(changes)
    with pytest.raises(ValidationError) as refused:
        order.place(**arguments)  # type: ignore[arg-type]
    assert refused.value.field == field
    assert not order.view().placed and order.doc.get_update() == Order.new("o-1", client_id=7).doc.get_update()


def test_an_order_moves_forward_skipping_stages_and_keeps_a_trail() -> None:
    order = placed()
    assert order.advance("confirmed", by="kitchen", at=2_000)
    assert order.advance("ready", by="kitchen", note="on the counter", at=3_000)
    assert not order.advance("ready", by="kitchen")  # already there: nothing written
    assert order.record_payment("authorized", by="terminal", at=3_500)
    assert order.record_payment("paid", by="terminal", at=4_000)
    assert order.advance("completed", by="till", at=5_000)
    trail = [(t.kind, t.previous, t.to, t.by, t.at, t.note) for t in order.trail()]
    assert trail == [
        ("stage", "placed", "confirmed", "kitchen", 2_000, None),
        ("stage", "confirmed", "ready", "kitchen", 3_000, "on the counter"),
        ("payment", "pending", "authorized", "terminal", 3_500, None),
        ("payment", "authorized", "paid", "terminal", 4_000, None),
        ("stage", "ready", "completed", "till", 5_000, None),
    ]
    assert all(t.effective for t in order.trail())


@pytest.mark.parametrize(
    ("path", "kind", "to"),
    [
        (["confirmed"], "stage", "placed"),
        (["cancelled"], "stage", "completed"),
        (["cancelled"], "stage", "ready"),
        (["completed"], "stage", "cancelled"),
        (["payment:authorized"], "payment", "failed"),
        (["payment:authorized"], "payment", "refunded"),
        (["payment:paid"], "payment", "authorized"),
        (["payment:paid", "payment:refunded"], "payment", "paid"),
    ],
)
def test_refused_transitions_are_typed_and_write_nothing(path: list[str], kind: str, to: str) -> None:
    order = placed()
    for step in path:
        if step.startswith("payment:"):
            order.record_payment(step.split(":", 1)[1], by="terminal")
        else:
            order.advance(step, by="till")
    before = order.doc.get_update()
    current = order.stage() if kind == "stage" else order.payment()
    with pytest.raises(TransitionRefused) as refused:
        if kind == "stage":
            order.advance(to, by="till")
        else:
            order.record_payment(to, by="till")
    assert (refused.value.kind, refused.value.current, refused.value.requested) == (kind, current, to)
    assert order.doc.get_update() == before


def test_a_failed_payment_can_be_retried() -> None:
    order = placed()
    order.record_payment("failed", by="terminal", note="card declined")
    assert order.record_payment("paid", by="terminal")
    assert order.payment() == "paid"


def test_moving_an_order_that_was_never_placed_is_refused() -> None:
    order = Order.new("o-2")
    with pytest.raises(OrderNotPlaced):
        order.advance("confirmed", by="till")
    with pytest.raises(ValidationError):
        placed().advance("shipped", by="till")
    with pytest.raises(ValidationError):
        placed().record_payment("paid", by="till", note="x" * 2000)


def test_foreign_content_is_reported_and_skipped_never_trusted() -> None:
    order = placed()
    order.advance("confirmed", by="till", at=2_000)
    trail = order.doc.get("trail", type=Array)
    trail.append({"id": "evil.1", "k": "stage", "to": "teleported", "at": 1, "by": "x"})
    trail.append({"id": "evil.2", "k": "refund-all", "to": "paid", "at": 1, "by": "x"})
    trail.append("not an object")
    trail.append({"id": "late.1", "k": "stage", "to": "placed", "at": 3_000, "by": "old-till"})
    view = order.view()
    assert view.stage == "confirmed"
    assert [issue.path for issue in view.issues] == ["trail[1]", "trail[2]", "trail[3]"]
    late = view.trail[-1]
    assert (late.to, late.previous, late.effective) == ("placed", "confirmed", False)


def test_a_tampered_checkout_is_reported_not_believed() -> None:
    order = placed()
    meta = order.doc.get("order", type=Map)
    content = dict(meta["placed"])
    content["total"] = 1
    meta["placed"] = content
    view = order.view()
    assert not view.placed and view.total == 0
    assert [issue.path for issue in view.issues] == ["order.placed"]
