"""Cart semantics: line identity, counter quantities, observed-remove, guest merges, pricing, size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from syncline.engine import (
    AlreadyMerged,
    Cart,
    CartClosed,
    CartStatus,
    UnknownLine,
    ValidationError,
    apply_update,
    line_key,
    price_lines,
)

from .helpers import copy_doc, send, snapshot, sync

MERGE_TIME = 1_717_236_000_000


def replica(cart: Cart, client_id: int) -> Cart:
    """Another peer's copy of ``cart``, up to date with it now (its clock reads MERGE_TIME too)."""
    return Cart(copy_doc(cart.doc, client_id), cart.cart_id, clock=lambda: MERGE_TIME)


def quantities(cart: Cart) -> dict[str, int]:
    return {line.key: line.quantity for line in cart.view().lines}


# -- line identity --------------------------------------------------------------------


def test_the_same_product_and_attributes_in_any_key_order_is_the_same_line() -> None:
    cart = Cart.new("cart-1", client_id=1)
    first = cart.add_item(
        "chair", 1, {"color": "oak", "dims": {"w": 40, "h": 90}, "options": ["arm", "cushion"]}
    )
    second = cart.add_item(
        "chair", 2, {"options": ["arm", "cushion"], "dims": {"h": 90, "w": 40}, "color": "oak"}
    )
    assert first == second
    (line,) = cart.lines()
    assert line.quantity == 3
    assert line.product_id == "chair"
    assert line.attributes == {"color": "oak", "dims": {"h": 90, "w": 40}, "options": ["arm", "cushion"]}


def test_an_integral_float_attribute_names_the_same_line_as_the_integer() -> None:
    cart = Cart.new("cart-1", client_id=1)
    assert cart.add_item("shelf", 1, {"dims": {"w": 2.0}}) == cart.add_item("shelf", 1, {"dims": {"w": 2}})
    assert cart.lines()[0].quantity == 2


def test_no_attributes_and_empty_attributes_are_the_same_line() -> None:
    cart = Cart.new("cart-1", client_id=1)
    assert cart.add_item("mug") == cart.add_item("mug", 1, {}) == line_key("mug", None)
    assert cart.quantity(line_key("mug")) == 2


@pytest.mark.parametrize(
    "other",
    [
        {"color": "walnut", "dims": {"w": 40}},
        {"color": "oak", "dims": {"w": 41}},
        {"color": "oak", "dims": {"w": 40.5}},
        {"color": "oak", "dims": {"w": "40"}},
        {"color": "oak", "dims": {"w": 40}, "gift": True},
        {"color": "oak"},
        {"color": "oak", "dims": [40]},
    ],
    ids=["value", "nested-value", "fraction", "string-number", "extra-key", "missing-key", "list-not-object"],
)
def test_different_attributes_are_different_lines(other: dict[str, Any]) -> None:
    cart = Cart.new("cart-1", client_id=1)
    base = cart.add_item("chair", 1, {"color": "oak", "dims": {"w": 40}})
    assert cart.add_item("chair", 1, other) != base
    assert sorted(line.quantity for line in cart.lines()) == [1, 1]


def test_a_different_product_with_the_same_attributes_is_a_different_line() -> None:
    cart = Cart.new("cart-1", client_id=1)
    assert cart.add_item("chair", 1, {"c": 1}) != cart.add_item("table", 1, {"c": 1})
    assert len(cart.lines()) == 2


# -- counters ---------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["a-first", "b-first"])
def test_two_offline_adds_of_two_and_three_make_five_in_either_delivery_order(order: str) -> None:
    a = Cart.new("cart-1", client_id=1)
    key = a.add_item("sku-1", 1)
    a.set_quantity(key, 0)  # the line is known to both replicas, empty
    b = replica(a, 2)
    a.add_item("sku-1", 2)
    b.add_item("sku-1", 3)
    update_a, update_b = a.doc.get_update(), b.doc.get_update()
    fresh = Cart.new("cart-1", client_id=3)
    for update in [update_a, update_b] if order == "a-first" else [update_b, update_a]:
        apply_update(fresh.doc, update)
    sync(a.doc, b.doc)
    assert a.quantity(key) == b.quantity(key) == fresh.quantity(key) == 5


def test_two_replicas_adding_a_line_neither_had_seen_also_sum() -> None:
    a, b = Cart.new("cart-1", client_id=1), Cart.new("cart-1", client_id=2)
    key_a = a.add_item("sku-1", 2, {"size": "M"})
    key_b = b.add_item("sku-1", 3, {"size": "M"})
    sync(a.doc, b.doc)
    assert key_a == key_b
    assert a.view() == b.view()
    assert a.quantity(key_a) == 5
    assert a.view().issues == ()


def test_applying_the_same_update_twice_changes_nothing() -> None:
    a = Cart.new("cart-1", client_id=1)
    key = a.add_item("sku-1", 2)
    b = replica(a, 2)
    sv = b.doc.get_state()
    a.add_item("sku-1", 3)
    update = a.doc.get_update(sv)
    apply_update(b.doc, update)
    after_once = snapshot(b.doc)
    apply_update(b.doc, update)
    apply_update(b.doc, a.doc.get_update())
    assert snapshot(b.doc) == after_once
    assert b.quantity(key) == 5


# -- set and remove on observed state ---------------------------------------------------


def test_set_quantity_replaces_what_the_replica_has_seen() -> None:
    cart = Cart.new("cart-1", client_id=1)
    key = cart.add_item("sku-1", 2)
    cart.add_item("sku-1", 5)
    cart.set_quantity(key, 3)
    assert cart.quantity(key) == 3
    cart.set_quantity(key, 10)
    assert cart.quantity(key) == 10
    cart.add_item("sku-1", 1)
    assert cart.quantity(key) == 11


def test_concurrent_add_survives_remove_it_had_not_seen() -> None:
    a = Cart.new("cart-1", client_id=1)
    key = a.add_item("sku-1", 2)
    b = replica(a, 2)
    b.add_item("sku-1", 3)  # unseen by a
    a.remove_line(key)
    assert a.quantity(key) == 0
    sync(a.doc, b.doc)
    assert a.quantity(key) == b.quantity(key) == 3


def test_concurrent_add_survives_set_quantity_it_had_not_seen() -> None:
    a = Cart.new("cart-1", client_id=1)
    key = a.add_item("sku-1", 2)
    b = replica(a, 2)
    b.add_item("sku-1", 3)
    a.set_quantity(key, 1)
    sync(a.doc, b.doc)
    assert a.quantity(key) == b.quantity(key) == 1 + 3


def test_a_remove_that_had_seen_the_add_removes_it() -> None:
    a = Cart.new("cart-1", client_id=1)
    key = a.add_item("sku-1", 2)
    b = replica(a, 2)
    b.add_item("sku-1", 3)
    sync(a.doc, b.doc)
    a.remove_line(key)
    sync(a.doc, b.doc)
    assert a.quantity(key) == b.quantity(key) == 0
    assert a.lines() == b.lines() == ()


def test_concurrent_set_quantity_on_two_replicas_keeps_the_larger_set() -> None:
    # Documented rule: quantity = max(n of the sets present) + sum(n of the adds present).
    a = Cart.new("cart-1", client_id=1)
    key = a.add_item("sku-1", 2)
    b = replica(a, 2)
    a.set_quantity(key, 3)
    b.set_quantity(key, 7)
    sync(a.doc, b.doc)
    assert a.quantity(key) == b.quantity(key) == 7


def test_concurrent_sets_and_an_unseen_add_follow_max_of_sets_plus_sum_of_adds() -> None:
    a = Cart.new("cart-1", client_id=1)
    key = a.add_item("sku-1", 2)
    b, c = replica(a, 2), replica(a, 3)
    a.set_quantity(key, 4)
    b.set_quantity(key, 6)
    c.add_item("sku-1", 5)
    c.add_item("sku-1", 1)
    sync(a.doc, b.doc, c.doc)
    assert a.quantity(key) == b.quantity(key) == c.quantity(key) == max(4, 6) + 5 + 1


def test_a_concurrent_remove_and_set_keep_the_set() -> None:
    a = Cart.new("cart-1", client_id=1)
    key = a.add_item("sku-1", 2)
    b = replica(a, 2)
    a.remove_line(key)
    b.set_quantity(key, 4)
    sync(a.doc, b.doc)
    assert a.quantity(key) == b.quantity(key) == 4


def test_quantity_never_shows_below_zero() -> None:
    a = Cart.new("cart-1", client_id=1)
    key = a.add_item("sku-1", 1)
    b = replica(a, 2)
    a.remove_line(key)
    b.remove_line(key)
    a.remove_line(key)  # removing an empty line again
    sync(a.doc, b.doc)
    assert a.quantity(key) == b.quantity(key) == 0
    assert a.lines() == ()
    with pytest.raises(ValidationError):
        a.set_quantity(key, -1)
    assert all(line.quantity > 0 for line in a.lines())


def test_clear_removes_every_observed_line_but_not_a_concurrent_add() -> None:
    a = Cart.new("cart-1", client_id=1)
    k1 = a.add_item("sku-1", 2)
    k2 = a.add_item("sku-2", 1, {"gift": True})
    b = replica(a, 2)
    b.add_item("sku-2", 4, {"gift": True})
    a.clear()
    assert a.lines() == ()
    sync(a.doc, b.doc)
    assert quantities(a) == quantities(b) == {k2: 4}
    assert a.quantity(k1) == 0


def test_a_line_is_addable_again_after_removal() -> None:
    cart = Cart.new("cart-1", client_id=1)
    key = cart.add_item("sku-1", 2)
    cart.remove_line(key)
    assert cart.add_item("sku-1", 1) == key
    assert cart.quantity(key) == 1


@pytest.mark.parametrize("operation", ["set", "remove"])
def test_set_or_remove_of_a_line_never_observed_raises_unknown_line_and_writes_nothing(
    operation: str,
) -> None:
    a = Cart.new("cart-1", client_id=1)
    a.add_item("sku-1", 1)
    unseen = Cart.new("cart-1", client_id=2).add_item("sku-2", 1)
    before = snapshot(a.doc)
    with pytest.raises(UnknownLine) as info:
        a.set_quantity(unseen, 3) if operation == "set" else a.remove_line(unseen)
    assert info.value.line_key == unseen
    assert snapshot(a.doc) == before


# -- guest to user merge ----------------------------------------------------------------


def guest_and_user() -> tuple[Cart, Cart, str, str]:
    guest = Cart.new("guest-1", client_id=11, clock=lambda: MERGE_TIME)
    user = Cart.new("user-1", client_id=21, clock=lambda: 1)
    chair = guest.add_item("chair", 2, {"color": "oak"})
    lamp = guest.add_item("lamp", 1)
    assert user.add_item("chair", 3, {"color": "oak"}) == chair
    user.add_item("rug", 1)
    return guest, user, chair, lamp


def test_merging_a_guest_cart_sums_matching_lines_and_adds_the_others() -> None:
    guest, user, chair, lamp = guest_and_user()
    result = guest.merge_into(user)
    assert result.replayed is False
    assert (result.source, result.target) == ("guest-1", "user-1")
    assert {line.key: line.quantity for line in result.lines} == {chair: 2, lamp: 1}
    assert quantities(user) == {chair: 5, lamp: 1, line_key("rug"): 1}
    assert user.view().line(lamp).product_id == "lamp"  # type: ignore[union-attr]


def test_a_merged_guest_cart_records_where_it_went_and_when_from_its_clock() -> None:
    guest, user, _, _ = guest_and_user()
    guest.merge_into(user)
    assert guest.status() == CartStatus("merged", "user-1", MERGE_TIME)
    assert Cart(copy_doc(guest.doc, 99), "guest-1").status() == CartStatus("merged", "user-1", MERGE_TIME)
    assert user.status() == CartStatus()


def test_replaying_a_merge_returns_replayed_and_changes_no_byte_of_either_cart() -> None:
    guest, user, chair, _ = guest_and_user()
    first = guest.merge_into(user)
    guest_before, user_before = snapshot(guest.doc), snapshot(user.doc)
    again = guest.merge_into(user)
    assert again.replayed is True
    assert again.lines == first.lines
    assert (snapshot(guest.doc), snapshot(user.doc)) == (guest_before, user_before)
    assert user.quantity(chair) == 5


def test_replaying_a_merge_through_another_replica_of_the_user_cart_changes_nothing() -> None:
    guest, user, chair, _ = guest_and_user()
    guest.merge_into(user)
    other_user = replica(user, 22)
    before = snapshot(other_user.doc)
    assert guest.merge_into(other_user).replayed is True
    assert snapshot(other_user.doc) == before
    assert other_user.quantity(chair) == 5


def test_merging_a_merged_cart_into_a_different_target_raises_already_merged() -> None:
    guest, user, _, _ = guest_and_user()
    guest.merge_into(user)
    other = Cart.new("user-2", client_id=31)
    before = snapshot(guest.doc), snapshot(other.doc)
    with pytest.raises(AlreadyMerged) as info:
        guest.merge_into(other)
    assert (info.value.merged_into, info.value.requested) == ("user-1", "user-2")
    assert (snapshot(guest.doc), snapshot(other.doc)) == before


def test_editing_a_merged_cart_raises_cart_closed_and_writes_nothing() -> None:
    guest, user, chair, _ = guest_and_user()
    guest.merge_into(user)
    before = snapshot(guest.doc)
    for edit in (
        lambda: guest.add_item("chair", 1, {"color": "oak"}),
        lambda: guest.set_quantity(chair, 9),
        lambda: guest.remove_line(chair),
        guest.clear,
    ):
        with pytest.raises(CartClosed) as info:
            edit()
        assert info.value.merged_into == "user-1"
    assert snapshot(guest.doc) == before


def test_a_replica_that_learns_of_the_merge_refuses_edits_too() -> None:
    guest, user, _, _ = guest_and_user()
    other_guest = replica(guest, 12)
    guest.merge_into(user)
    send(guest.doc, other_guest.doc)
    with pytest.raises(CartClosed):
        other_guest.add_item("lamp", 1)


def test_merging_into_a_closed_cart_raises_cart_closed_and_writes_nothing() -> None:
    guest, user, _, _ = guest_and_user()
    other_guest = Cart.new("guest-2", client_id=41)
    other_guest.add_item("lamp", 1)
    user.merge_into(Cart.new("user-2", client_id=51))
    before = snapshot(other_guest.doc), snapshot(user.doc)
    with pytest.raises(CartClosed):
        other_guest.merge_into(user)
    assert (snapshot(other_guest.doc), snapshot(user.doc)) == before
    assert other_guest.status().state == "open"


def test_merging_a_cart_into_itself_raises_validation_error() -> None:
    guest, _, _, _ = guest_and_user()
    before = snapshot(guest.doc)
    for target in (guest, replica(guest, 12)):
        with pytest.raises(ValidationError) as info:
            guest.merge_into(target)
        assert info.value.field == "target"
    assert snapshot(guest.doc) == before
    assert guest.status().state == "open"


def test_a_merge_replayed_concurrently_on_two_replicas_counts_once_after_sync() -> None:
    guest_1, user_1, chair, lamp = guest_and_user()
    guest_2, user_2 = replica(guest_1, 12), replica(user_1, 22)
    assert guest_1.merge_into(user_1).replayed is False
    assert guest_2.merge_into(user_2).replayed is False  # offline: it had not seen the first merge
    sync(guest_1.doc, guest_2.doc)
    sync(user_1.doc, user_2.doc)
    expected = {chair: 5, lamp: 1, line_key("rug"): 1}
    assert quantities(user_1) == quantities(user_2) == expected
    assert guest_1.status() == guest_2.status()
    assert guest_1.status().merged_into == "user-1"


def test_a_merge_absorbed_by_a_later_set_is_not_double_counted_when_another_replica_replays_it() -> None:
    guest_1, user_1, chair, lamp = guest_and_user()
    guest_2, user_2 = replica(guest_1, 12), replica(user_1, 22)
    guest_1.merge_into(user_1)
    user_1.set_quantity(chair, 4)  # the user looked at 5 chairs and wanted 4
    guest_2.merge_into(user_2)  # concurrently, the same merge on a replica that saw none of this
    sync(guest_1.doc, guest_2.doc)
    sync(user_1.doc, user_2.doc)
    assert quantities(user_1) == quantities(user_2)
    assert user_1.quantity(chair) == 4
    assert user_1.quantity(lamp) == 1


def test_a_merge_absorbed_by_a_later_remove_does_not_come_back_from_a_concurrent_replay() -> None:
    guest_1, user_1, chair, lamp = guest_and_user()
    guest_2, user_2 = replica(guest_1, 12), replica(user_1, 22)
    guest_1.merge_into(user_1)
    user_1.remove_line(lamp)
    guest_2.merge_into(user_2)
    sync(guest_1.doc, guest_2.doc)
    sync(user_1.doc, user_2.doc)
    assert user_1.quantity(lamp) == user_2.quantity(lamp) == 0
    assert user_1.quantity(chair) == user_2.quantity(chair) == 5


def test_merging_an_empty_guest_cart_closes_it_and_changes_no_line() -> None:
    guest = Cart.new("guest-1", client_id=11, clock=lambda: MERGE_TIME)
    user = Cart.new("user-1", client_id=21)
    user.add_item("rug", 2)
    result = guest.merge_into(user)
    assert result.lines == ()
    assert quantities(user) == {line_key("rug"): 2}
    assert guest.status().state == "merged"


# -- pricing ---------------------------------------------------------------------------


PRICES = {"chair": 4_500, "lamp": 1_999}


def price_of(product_id: str, attributes: Mapping[str, Any]) -> int | None:
    price = PRICES.get(product_id)
    if price is not None and attributes.get("color") == "walnut":
        price += 500
    return price


def test_price_lines_prices_each_line_with_the_trusted_source_and_sums_the_total() -> None:
    cart = Cart.new("cart-1", client_id=1)
    oak = cart.add_item("chair", 2, {"color": "oak"})
    walnut = cart.add_item("chair", 1, {"color": "walnut"})
    lamp = cart.add_item("lamp", 3)
    priced, total = price_lines(cart.view(), price_of)
    assert {p.line.key: (p.unit_price, p.line_total) for p in priced} == {
        oak: (4_500, 9_000),
        walnut: (5_000, 5_000),
        lamp: (1_999, 5_997),
    }
    assert total == 9_000 + 5_000 + 5_997


def test_a_line_without_a_price_makes_the_total_unknown() -> None:
    cart = Cart.new("cart-1", client_id=1)
    cart.add_item("chair", 1)
    mystery = cart.add_item("mystery", 2)
    priced, total = price_lines(cart.view(), price_of)
    assert total is None
    assert [(p.unit_price, p.line_total) for p in priced if p.line.key == mystery] == [(None, None)]


def test_an_empty_cart_costs_zero() -> None:
    assert price_lines(Cart.new("cart-1", client_id=1).view(), price_of) == ((), 0)


# -- size ------------------------------------------------------------------------------


def test_add_and_remove_cycles_keep_the_document_small() -> None:
    cart = Cart.new("cart-1", client_id=1)
    key = cart.add_item("sku-1", 1, {"size": "M"})
    sv = cart.doc.get_state()
    cart.add_item("sku-1", 1, {"size": "M"})
    one_op = len(cart.doc.get_update(sv))
    cart.remove_line(key)
    for _ in range(1_000):
        cart.add_item("sku-1", 1, {"size": "M"})
        cart.remove_line(key)
    size = len(cart.doc.get_update())
    # Removed ops are Yjs deletions: their content is garbage-collected and the tombstones of one
    # client's consecutive items collapse into one range, so the document does not grow with the
    # number of cycles. Measured: one op ~73 bytes, the whole document ~95 bytes after 1000 cycles
    # (it would be ~73 KB if removed ops were kept). 10 ops' worth leaves ample margin while still
    # failing on any per-cycle growth of even one byte.
    assert size < 10 * one_op < 1_000
    assert cart.quantity(key) == 0


def test_set_quantity_cycles_keep_the_document_small() -> None:
    cart = Cart.new("cart-1", client_id=1)
    key = cart.add_item("sku-1", 1)
    sv = cart.doc.get_state()
    cart.add_item("sku-1", 1)
    one_op = len(cart.doc.get_update(sv))
    for n in range(1_000):
        cart.add_item("sku-1", 3)
        cart.set_quantity(key, n % 7 + 1)
    # Each set deletes the ops it replaces and leaves one live set op: measured ~160 bytes in all.
    assert len(cart.doc.get_update()) < 10 * one_op
    assert cart.quantity(key) == 999 % 7 + 1


def test_a_replayed_merge_carries_over_what_an_offline_device_added_to_the_guest_cart() -> None:
    till_user, till_guest = Cart.new("u", client_id=1), Cart.new("g", client_id=1)
    phone_guest = Cart.new("g", client_id=2)
    tee = till_guest.add_item("tee", 1)
    sync(till_guest.doc, phone_guest.doc)
    till_guest.merge_into(till_user)  # the till merges tee x1 ...
    mug = phone_guest.add_item("mug", 2)  # ... while the phone, offline, adds to the guest cart
    phone_guest.add_item("tee", 2)
    sync(till_guest.doc, phone_guest.doc)
    assert till_guest.merge_into(till_user).replayed
    assert (till_user.quantity(tee), till_user.quantity(mug)) == (3, 2)
    unchanged = snapshot(till_user.doc)
    assert till_guest.merge_into(till_user).replayed
    assert snapshot(till_user.doc) == unchanged  # a second replay writes nothing


# -- checked-out carts -----------------------------------------------------------------


def test_a_checked_out_cart_records_its_order_and_time_on_every_replica() -> None:
    cart = Cart.new("user-1", client_id=61, clock=lambda: MERGE_TIME)
    cart.add_item("chair", 2)
    status = cart.check_out("order-7", at=1_700_000_000_500)
    assert status == CartStatus("checked_out", order="order-7", checked_out_at=1_700_000_000_500)
    assert Cart(copy_doc(cart.doc, 62), "user-1").status() == status
    assert [line.quantity for line in cart.lines()] == [2]  # the lines stay as they were
    other = Cart.new("user-2", client_id=63, clock=lambda: MERGE_TIME)
    assert other.check_out("order-8").checked_out_at == MERGE_TIME  # no time given: the clock's


def test_checking_out_again_into_the_same_order_writes_nothing_and_another_order_is_refused() -> None:
    cart = Cart.new("user-1", client_id=61)
    cart.add_item("chair", 1)
    first = cart.check_out("order-7", at=5)
    before = snapshot(cart.doc)
    assert cart.check_out("order-7", at=99) == first
    with pytest.raises(CartClosed) as info:
        cart.check_out("order-8")
    assert (info.value.state, info.value.target, info.value.order, info.value.merged_into) == (
        "checked_out", "order-7", "order-7", None)
    assert "checked out into order 'order-7'" in str(info.value)
    assert snapshot(cart.doc) == before


def test_a_checked_out_cart_refuses_edits_and_merges_either_way_and_writes_nothing() -> None:
    guest, user, chair, _ = guest_and_user()
    user.check_out("order-7", at=5)
    other = Cart.new("user-2", client_id=64)
    before = snapshot(guest.doc), snapshot(user.doc), snapshot(other.doc)
    for edit in (
        lambda: user.add_item("chair", 1, {"color": "oak"}),
        lambda: user.set_quantity(chair, 9),
        lambda: user.remove_line(chair),
        user.clear,
        lambda: guest.merge_into(user),
        lambda: user.merge_into(other),
    ):
        with pytest.raises(CartClosed) as info:
            edit()
        assert (info.value.state, info.value.order) == ("checked_out", "order-7")
    assert (snapshot(guest.doc), snapshot(user.doc), snapshot(other.doc)) == before
    assert guest.status().state == "open"


def test_checking_out_a_merged_cart_is_refused() -> None:
    guest, user, _, _ = guest_and_user()
    guest.merge_into(user)
    before = snapshot(guest.doc)
    with pytest.raises(CartClosed) as info:
        guest.check_out("order-7")
    assert (info.value.state, info.value.merged_into, info.value.order) == ("merged", "user-1", None)
    assert snapshot(guest.doc) == before


def test_a_bad_order_id_or_time_is_a_validation_error() -> None:
    cart = Cart.new("user-1", client_id=61)
    with pytest.raises(ValidationError):
        cart.check_out("")
    with pytest.raises(ValidationError):
        cart.check_out("order-7", at=-1)
    assert cart.status().state == "open"


def test_cart_closed_keeps_its_old_signature_for_merged_carts() -> None:
    error = CartClosed("user-1")
    assert (error.state, error.target, error.merged_into, error.order) == ("merged", "user-1", "user-1", None)
    assert str(error) == "cart was merged into 'user-1' and no longer accepts edits"
