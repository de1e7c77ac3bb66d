"""``syncline demo``: two offline replicas of one cart edit it, then sync and agree."""

from __future__ import annotations

from collections.abc import Callable

from pycrdt import Doc

from syncline.engine import Cart, StockLedger, apply_update, encode_diff, state_vector


def _sync(a: Doc, b: Doc) -> int:
    """Exchange what each side lacks, as two peers would over any transport."""
    to_b = encode_diff(a, state_vector(b))
    to_a = encode_diff(b, state_vector(a))
    apply_update(b, to_b)
    apply_update(a, to_a)
    return len(to_a) + len(to_b)


def run(echo: Callable[[str], None] = print) -> None:
    till = Cart.new("acme/cart/c-42")
    phone = Cart(Doc(), "acme/cart/c-42")
    _sync(till.doc, phone.doc)

    echo("Two replicas of acme/cart/c-42 go offline.")
    shirt = till.add_item("tee", 2, {"size": "M", "color": "blue"})
    phone.add_item("tee", 3, {"color": "blue", "size": "M"})
    mug = phone.add_item("mug", 1)
    echo("  till : +2 tee {size: M, color: blue}")
    echo("  phone: +3 tee {color: blue, size: M}   (same line: attributes match in any order)")
    echo("  phone: +1 mug")
    _sync(till.doc, phone.doc)
    echo(f"After sync both show tee x{till.quantity(shirt)} and mug x{till.quantity(mug)}: counters, not last-writer-wins.")

    till.remove_line(mug)
    phone.add_item("mug", 2)
    echo("Offline again: the till removes the mug line while the phone adds 2 more mugs.")
    bytes_exchanged = _sync(till.doc, phone.doc)
    echo(f"After sync ({bytes_exchanged} bytes exchanged) both show mug x{phone.quantity(mug)}: the unseen add survives.")
    assert till.view().lines == phone.view().lines

    guest = Cart.new("acme/cart/guest-7")
    guest.add_item("tee", 1, {"size": "M", "color": "blue"})
    guest.merge_into(till)
    guest.merge_into(till)
    _sync(till.doc, phone.doc)
    echo(f"A guest cart with 1 tee is merged into it twice: tee x{phone.quantity(shirt)} (the replay changed nothing).")

    north = StockLedger.new("acme/stock/north")
    south = StockLedger(Doc(), "acme/stock/north")
    north.record("restock-1", "tee-M", 3, reason="restock", actor="warehouse")
    _sync(north.doc, south.doc)
    north.record("sale-1", "tee-M", -2, reason="sale", actor="till-1")
    south.record("sale-2", "tee-M", -2, reason="sale", actor="till-2")
    _sync(north.doc, south.doc)
    conflict = north.conflicts()[0]
    echo(f"Stock: 3 in, two offline sales of 2: level {north.level('tee-M')}, conflict {conflict.id} on both replicas.")
    south.resolve(conflict.id, "compensate", actor="manager", note="found one in the back room")
    _sync(north.doc, south.doc)
    echo(f"A manager compensates; after sync level {north.level('tee-M')} and {len(north.conflicts())} open conflicts.")
