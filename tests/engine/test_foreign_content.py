"""Any Yjs peer can write anything into a document: readers skip and report it, never crash.

A foreign peer here is plain pycrdt writing into the same roots as the engine. Each test
compares the view of a document carrying foreign content with the view of the same document
without it: valid entries must keep exactly their meaning, and every invalid entry must be
reported in ``view().issues`` with a path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, XmlFragment
from syncline.engine import Cart, CartView, LedgerView, SchemaIssue, StockLedger, apply_update, line_key

from .helpers import copy_doc, send, snapshot

FOREIGN_CLIENT = 666
UNKNOWN_KEY = "0" * 32  # a well-formed line key no line metadata exists for

Edit = Callable[[Doc], object]


# -- fixtures: a clean cart and ledger, and a foreign peer writing into copies -----------


def clean_cart() -> Cart:
    cart = Cart.new("cart-1", client_id=1, clock=lambda: 1_000)
    chair = cart.add_item("chair", 2, {"color": "oak", "dims": {"w": 40}})
    cart.add_item("lamp", 1)
    cart.add_item("chair", 3, {"color": "oak", "dims": {"w": 40}})
    cart.set_quantity(chair, 4)
    cart.add_item("rug", 2)
    return cart


def clean_ledger() -> StockLedger:
    stock = StockLedger.new("store-1", client_id=1, clock=lambda: 9_000)
    stock.record("restock-1", "sku-1", 1, reason="restock", actor="alice", at=1_000)
    stock.record("sale-a", "sku-1", -1, reason="sale", actor="till-a", at=2_000)
    stock.record("sale-b", "sku-1", -1, reason="sale", actor="till-b", at=2_001, ref="order-7")
    stock.record("restock-2", "sku-2", 5, reason="restock", actor="alice", at=3_000)
    stock.record("sale-c", "sku-2", -8, reason="sale", actor="till-a", at=3_500)
    conflicts = {c.sku: c for c in stock.conflicts()}
    stock.resolve(
        conflicts["sku-1"].id, "accept", actor="manager", at=4_000, note="backorder", resolution_id="r-1"
    )
    return stock


def with_foreign_content(clean: Doc, edit: Edit) -> Doc:
    """A replica of ``clean`` that also received what a foreign peer wrote with ``edit``."""
    foreign = copy_doc(clean, FOREIGN_CLIENT)
    edit(foreign)
    polluted = copy_doc(clean, 2)
    send(foreign, polluted)
    return polluted


def assert_cart_meaning_kept(clean: Cart, polluted: CartView) -> None:
    expected = clean.view()
    assert polluted.lines == expected.lines
    assert polluted.status == expected.status


def assert_ledger_meaning_kept(clean: StockLedger, polluted: LedgerView) -> None:
    expected = clean.view()
    assert polluted.adjustments == expected.adjustments
    assert polluted.resolutions == expected.resolutions
    assert polluted.levels == expected.levels
    assert polluted.conflicts == expected.conflicts
    assert polluted.resolved == expected.resolved


def assert_reported(issues: tuple[SchemaIssue, ...], path: str) -> None:
    assert all(isinstance(issue, SchemaIssue) and issue.path and issue.reason for issue in issues)
    assert path in [issue.path for issue in issues], f"{path!r} not reported in {[str(i) for i in issues]}"


def append(root: str, value: object) -> Edit:
    return lambda doc: doc.get(root, type=Array).append(value)


def set_key(root: str, key: str, value: object) -> Edit:
    def edit(doc: Doc) -> None:
        doc.get(root, type=Map)[key] = value

    return edit


def valid_key() -> str:
    return line_key("lamp")


def op(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "f.1", "l": valid_key(), "k": "add", "n": 1}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not MISSING}


MISSING = object()


# -- cart: ops ---------------------------------------------------------------------------

BAD_OPS: list[Any] = [
    pytest.param("hello", id="string"),
    pytest.param(42, id="number"),
    pytest.param(2.5, id="float"),
    pytest.param(None, id="none"),
    pytest.param(True, id="bool"),
    pytest.param([1, 2, 3], id="list"),
    pytest.param(b"\x00\x01", id="bytes"),
    pytest.param(op(n="5"), id="n-string"),
    pytest.param(op(n=2.5), id="n-fraction"),
    pytest.param(op(n=-1), id="n-negative"),
    pytest.param(op(n=0), id="add-n-zero"),
    pytest.param(op(n=2**63 - 1), id="n-huge-int"),
    pytest.param(op(n=1e300), id="n-huge-float"),
    pytest.param(op(n=math.nan), id="n-nan"),
    pytest.param(op(n=math.inf), id="n-inf"),
    pytest.param(op(n=True), id="n-bool"),
    pytest.param(op(n=None), id="n-none"),
    pytest.param(op(n=MISSING), id="n-missing"),
    pytest.param(op(k="set", n=-3), id="set-n-negative"),
    pytest.param(op(k="mul"), id="unknown-kind"),
    pytest.param(op(k=MISSING), id="kind-missing"),
    pytest.param(op(id=MISSING), id="id-missing"),
    pytest.param(op(id=""), id="id-empty"),
    pytest.param(op(id=7), id="id-number"),
    pytest.param(op(id="x" * 200), id="id-too-long"),
    pytest.param(op(l=MISSING), id="line-missing"),
    pytest.param(op(l=["k"]), id="line-list"),
    pytest.param(op(k="set", n=1, m="guest-9"), id="merge-key-on-a-set"),
    pytest.param(op(m=5), id="merge-key-number"),
    pytest.param(op(a=["guest-9"]), id="absorbed-on-an-add"),
    pytest.param(op(k="set", n=1, a="guest-9"), id="absorbed-not-a-list"),
    pytest.param(op(k="set", n=1, a=["g"] * 1025), id="absorbed-too-long"),
    pytest.param(op(k="set", n=1, a=[5]), id="absorbed-number"),
]


@pytest.mark.parametrize("entry", BAD_OPS)
def test_an_invalid_op_is_reported_and_changes_no_line(entry: object) -> None:
    cart = clean_cart()
    index = len(cart.doc.get("ops", type=Array))
    view = Cart(with_foreign_content(cart.doc, append("ops", entry)), "cart-1").view()
    assert_cart_meaning_kept(cart, view)
    assert_reported(view.issues, f"ops[{index}]")


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: Text("add 5 lamps"), id="y-text"),
        pytest.param(lambda: Array([1, "two", None]), id="y-array"),
        pytest.param(
            lambda: Map({"id": "f.1", "l": valid_key(), "k": "add", "n": Text("5")}), id="y-map-with-y-text"
        ),
        pytest.param(
            lambda: Map({"nested": Map({"deeper": Array([Map({"a": Text("b")})])})}), id="deeply-nested"
        ),
        pytest.param(lambda: Array([op()]), id="y-array-holding-a-valid-op"),
        pytest.param(Doc, id="subdocument"),
        pytest.param(XmlFragment, id="xml-fragment"),
    ],
)
def test_a_nested_shared_type_in_the_ops_is_reported_and_changes_no_line(make: Callable[[], object]) -> None:
    cart = clean_cart()
    index = len(cart.doc.get("ops", type=Array))
    view = Cart(with_foreign_content(cart.doc, append("ops", make())), "cart-1").view()
    assert_cart_meaning_kept(cart, view)
    assert_reported(view.issues, f"ops[{index}]")


def test_ops_for_a_line_with_no_metadata_are_reported_and_not_shown() -> None:
    cart = clean_cart()
    view = Cart(with_foreign_content(cart.doc, append("ops", op(l=UNKNOWN_KEY, n=3))), "cart-1").view()
    assert_cart_meaning_kept(cart, view)
    assert_reported(view.issues, f"ops[line={UNKNOWN_KEY}]")


def test_an_integral_float_from_a_javascript_peer_counts_as_an_integer() -> None:
    cart = clean_cart()
    lamp = valid_key()
    view = Cart(with_foreign_content(cart.doc, append("ops", op(id="js.1", n=2.0))), "cart-1").view()
    assert view.issues == ()
    assert view.line(lamp).quantity == cart.quantity(lamp) + 2  # type: ignore[union-attr]
    assert type(view.line(lamp).quantity) is int  # type: ignore[union-attr]


def test_a_set_written_by_a_javascript_peer_with_float_numbers_is_honoured() -> None:
    cart = clean_cart()
    rug = line_key("rug")

    def js_set(doc: Doc) -> None:
        # What a JS peer that observed the rug line writes: delete the ops it saw, append a set.
        ops = doc.get("ops", type=Array)
        for index in reversed([i for i, entry in enumerate(ops.to_py()) if entry["l"] == rug]):
            del ops[index]
        ops.append({"id": "js.9", "l": rug, "k": "set", "n": 7.0})

    view = Cart(with_foreign_content(cart.doc, js_set), "cart-1").view()
    assert view.issues == ()
    assert view.line(rug).quantity == 7  # type: ignore[union-attr]


def test_a_duplicated_op_counts_once_and_a_later_set_replaces_both_copies() -> None:
    cart = clean_cart()
    lamp = valid_key()

    def replay(doc: Doc) -> None:
        doc.get("ops", type=Array).extend([op(id="dup.1", n=5), op(id="dup.1", n=5)])

    polluted = Cart(with_foreign_content(cart.doc, replay), "cart-1")
    assert polluted.quantity(lamp) == cart.quantity(lamp) + 5
    assert any("duplicate" in issue.reason for issue in polluted.view().issues)
    polluted.set_quantity(lamp, 1)
    assert polluted.quantity(lamp) == 1
    polluted.remove_line(lamp)
    assert polluted.quantity(lamp) == 0


# -- cart: lines ----------------------------------------------------------------------------


def test_a_line_meta_whose_key_does_not_match_its_content_is_reported_and_its_ops_ignored() -> None:
    cart = clean_cart()
    forged = "f" * 32

    def edit(doc: Doc) -> None:
        doc.get("lines", type=Map)[forged] = {"product": "lamp", "attributes": {}}
        doc.get("ops", type=Array).append(op(l=forged, n=9))

    view = Cart(with_foreign_content(cart.doc, edit), "cart-1").view()
    assert_cart_meaning_kept(cart, view)
    assert_reported(view.issues, f"lines[{forged}]")


@pytest.mark.parametrize(
    "meta",
    [
        pytest.param("lamp", id="string"),
        pytest.param(None, id="none"),
        pytest.param(17, id="number"),
        pytest.param({"attributes": {}}, id="product-missing"),
        pytest.param({"product": 5, "attributes": {}}, id="product-number"),
        pytest.param({"product": " p", "attributes": {}}, id="product-padded"),
        pytest.param({"product": "p", "attributes": "red"}, id="attributes-string"),
        pytest.param({"product": "p", "attributes": {"w": math.nan}}, id="attributes-nan"),
        pytest.param(Text("lamp"), id="y-text"),
        pytest.param(Array(["lamp"]), id="y-array"),
    ],
)
@pytest.mark.parametrize("with_ops", [True, False], ids=["with-ops", "without-ops"])
def test_invalid_line_metadata_is_reported(meta: object, with_ops: bool) -> None:
    cart = clean_cart()
    key = "e" * 32

    def edit(doc: Doc) -> None:
        doc.get("lines", type=Map)[key] = meta
        if with_ops:
            doc.get("ops", type=Array).append(op(l=key, n=2))

    view = Cart(with_foreign_content(cart.doc, edit), "cart-1").view()
    assert_cart_meaning_kept(cart, view)
    paths = [issue.path for issue in view.issues]
    if with_ops and f"ops[line={key}]" in paths:
        return  # reported through the ops it orphans (a stored None reads like no entry at all)
    assert_reported(view.issues, f"lines[{key}]")


# -- cart: status ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("closed", id="unknown-word"),
        pytest.param(5, id="number"),
        pytest.param(None, id="none"),
        pytest.param(["merged"], id="list"),
        pytest.param(Text("merged"), id="y-text"),
        pytest.param(Map({"state": "merged"}), id="y-map"),
    ],
)
def test_a_garbage_status_is_reported_and_the_cart_stays_open(value: object) -> None:
    cart = clean_cart()
    polluted = Cart(with_foreign_content(cart.doc, set_key("cart", "status", value)), "cart-1")
    view = polluted.view()
    assert_cart_meaning_kept(cart, view)
    assert view.status.state == "open"
    assert any(issue.path.startswith("cart") for issue in view.issues), [str(i) for i in view.issues]
    polluted.add_item("lamp", 1)  # still editable


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("merged_into", 5),
        ("merged_into", ""),
        ("merged_at", "yesterday"),
        ("merged_at", -5),
        ("merged_at", 1.5),
    ],
)
def test_garbage_merge_details_are_reported(field: str, value: object) -> None:
    guest = Cart.new("guest-1", client_id=1, clock=lambda: 1_000)
    guest.add_item("lamp", 1)
    guest.merge_into(Cart.new("user-1", client_id=3))
    view = Cart(with_foreign_content(guest.doc, set_key("cart", field, value)), "guest-1").view()
    assert view.status.state == "merged"
    assert view.lines == guest.view().lines
    assert any(issue.path.startswith("cart") for issue in view.issues), [str(i) for i in view.issues]


# -- roots created with the wrong type --------------------------------------------------------


@pytest.mark.parametrize(
    ("root", "write"),
    [
        pytest.param("ops", lambda doc: doc.get("ops", type=Map).update({"x": op(n=50)}), id="ops-as-map"),
        pytest.param("ops", lambda doc: doc.get("ops", type=Text).insert(0, "ops"), id="ops-as-text"),
        pytest.param("lines", lambda doc: doc.get("lines", type=Array).append("lamp"), id="lines-as-array"),
        pytest.param("cart", lambda doc: doc.get("cart", type=Array).append("merged"), id="cart-as-array"),
    ],
)
def test_a_root_created_with_the_wrong_type_before_the_cart_is_opened_is_reported(
    root: str, write: Edit
) -> None:
    foreign = Doc(client_id=FOREIGN_CLIENT)
    write(foreign)
    doc = Doc(client_id=2)
    apply_update(doc, foreign.get_update())
    cart = Cart(doc, "cart-1")
    view = cart.view()
    assert view.lines == ()
    assert view.status.state == "open"
    assert any(issue.path.startswith(root) for issue in view.issues), [str(i) for i in view.issues]


def test_a_cart_whose_ops_root_a_foreign_peer_created_as_a_map_still_works_and_converges() -> None:
    foreign = Doc(client_id=FOREIGN_CLIENT)
    foreign.get("ops", type=Map)["x"] = op(n=50)
    a, b = Doc(client_id=1), Doc(client_id=2)
    apply_update(a, foreign.get_update())
    cart_a = Cart(a, "cart-1")
    lamp = cart_a.add_item("lamp", 2)
    apply_update(b, foreign.get_update())
    cart_b = Cart(b, "cart-1")
    cart_b.add_item("lamp", 3)
    send(a, b)
    send(b, a)
    assert cart_a.view().lines == cart_b.view().lines
    assert cart_a.quantity(lamp) == 5


# -- ledger: adjustments and resolutions ------------------------------------------------------


def adjustment(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "f-1",
        "sku": "sku-9",
        "delta": 3,
        "reason": "restock",
        "actor": "mallory",
        "at": 5_000,
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not MISSING}


BAD_ADJUSTMENTS: list[Any] = [
    pytest.param("restock 5", id="string"),
    pytest.param(5, id="number"),
    pytest.param(None, id="none"),
    pytest.param([adjustment()], id="list-holding-a-valid-body"),
    pytest.param(adjustment(delta="5"), id="delta-string"),
    pytest.param(adjustment(delta=2.5), id="delta-fraction"),
    pytest.param(adjustment(delta=0), id="delta-zero"),
    pytest.param(adjustment(delta=2**63 - 1), id="delta-huge-int"),
    pytest.param(adjustment(delta=-1e300), id="delta-huge-float"),
    pytest.param(adjustment(delta=math.nan), id="delta-nan"),
    pytest.param(adjustment(delta=True), id="delta-bool"),
    pytest.param(adjustment(delta=MISSING), id="delta-missing"),
    pytest.param(adjustment(id=MISSING), id="id-missing"),
    pytest.param(adjustment(id=""), id="id-empty"),
    pytest.param(adjustment(sku=5), id="sku-number"),
    pytest.param(adjustment(sku="a\nb"), id="sku-newline"),
    pytest.param(adjustment(reason=MISSING), id="reason-missing"),
    pytest.param(adjustment(actor=None), id="actor-none"),
    pytest.param(adjustment(at=-1), id="at-negative"),
    pytest.param(adjustment(at="now"), id="at-string"),
    pytest.param(adjustment(at=2.0**60), id="at-beyond-2**53"),
    pytest.param(adjustment(ref=5), id="ref-number"),
]


@pytest.mark.parametrize("entry", BAD_ADJUSTMENTS)
def test_an_invalid_adjustment_is_reported_and_changes_no_level(entry: object) -> None:
    stock = clean_ledger()
    index = len(stock.doc.get("adjustments", type=Array))
    view = StockLedger(with_foreign_content(stock.doc, append("adjustments", entry)), "store-1").view()
    assert_ledger_meaning_kept(stock, view)
    assert_reported(view.issues, f"adjustments[{index}]")


def resolution(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "f-r",
        "conflict": "negative_level:abc",
        "sku": "sku-2",
        "strategy": "accept",
        "actor": "mallory",
        "at": 6_000,
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not MISSING}


BAD_RESOLUTIONS: list[Any] = [
    pytest.param("accept everything", id="string"),
    pytest.param(3.5, id="number"),
    pytest.param(resolution(strategy="ignore"), id="strategy-unknown"),
    pytest.param(resolution(strategy=MISSING), id="strategy-missing"),
    pytest.param(resolution(conflict=MISSING), id="conflict-missing"),
    pytest.param(resolution(id=5), id="id-number"),
    pytest.param(resolution(level=-1, strategy="merge"), id="level-negative"),
    pytest.param(resolution(level="3", strategy="merge"), id="level-string"),
    pytest.param(resolution(note=5), id="note-number"),
    pytest.param(resolution(at=-1), id="at-negative"),
    pytest.param(resolution(actor=""), id="actor-empty"),
    pytest.param(resolution(adjustment=7), id="adjustment-number"),
]


@pytest.mark.parametrize("entry", BAD_RESOLUTIONS)
def test_an_invalid_resolution_is_reported_and_closes_no_conflict(entry: object) -> None:
    stock = clean_ledger()
    index = len(stock.doc.get("resolutions", type=Array))
    view = StockLedger(with_foreign_content(stock.doc, append("resolutions", entry)), "store-1").view()
    assert_ledger_meaning_kept(stock, view)
    assert_reported(view.issues, f"resolutions[{index}]")


@pytest.mark.parametrize("root", ["adjustments", "resolutions"])
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: Text("delta 5"), id="y-text"),
        pytest.param(lambda: Array([1, 2]), id="y-array"),
        pytest.param(lambda: Map({"id": Text("x"), "sku": Map({"a": 1})}), id="y-map-with-nested-types"),
        pytest.param(Doc, id="subdocument"),
        pytest.param(XmlFragment, id="xml-fragment"),
    ],
)
def test_a_nested_shared_type_in_the_ledger_is_reported_and_changes_nothing(
    root: str, make: Callable[[], object]
) -> None:
    stock = clean_ledger()
    index = len(stock.doc.get(root, type=Array))
    view = StockLedger(with_foreign_content(stock.doc, append(root, make())), "store-1").view()
    assert_ledger_meaning_kept(stock, view)
    assert_reported(view.issues, f"{root}[{index}]")


def test_integral_floats_from_a_javascript_peer_are_accepted_as_integers() -> None:
    stock = clean_ledger()

    def edit(doc: Doc) -> None:
        doc.get("adjustments", type=Array).append(adjustment(id="js-1", sku="sku-1", delta=4.0, at=7_000.0))

    view = StockLedger(with_foreign_content(stock.doc, edit), "store-1").view()
    assert view.issues == ()
    js = next(a for a in view.adjustments if a.id == "js-1")
    assert (js.delta, js.at) == (4, 7_000)
    assert type(js.delta) is int and type(js.at) is int
    assert view.levels["sku-1"] == stock.level("sku-1") + 4


@pytest.mark.parametrize(
    ("root", "write"),
    [
        pytest.param(
            "adjustments",
            lambda doc: doc.get("adjustments", type=Map).update({"a": adjustment()}),
            id="adjustments-as-map",
        ),
        pytest.param(
            "resolutions",
            lambda doc: doc.get("resolutions", type=Text).insert(0, "accept"),
            id="resolutions-as-text",
        ),
    ],
)
def test_a_ledger_root_created_with_the_wrong_type_is_reported(root: str, write: Edit) -> None:
    foreign = Doc(client_id=FOREIGN_CLIENT)
    write(foreign)
    doc = Doc(client_id=2)
    apply_update(doc, foreign.get_update())
    stock = StockLedger(doc, "store-1")
    view = stock.view()
    assert view.adjustments == () and view.levels == {}
    assert any(issue.path.startswith(root) for issue in view.issues), [str(i) for i in view.issues]
    stock.record("a-1", "sku-1", 2, reason="restock", actor="alice", at=1)
    assert stock.level("sku-1") == 2


def test_a_foreign_edit_inside_a_nested_map_is_seen_by_a_ledger_already_open() -> None:
    # A foreign peer may write an adjustment as a Y.Map and later delete one of its keys.
    # That update only deletes: the state vector and the array lengths do not move.
    stock = clean_ledger()
    foreign = copy_doc(stock.doc, FOREIGN_CLIENT)
    body = Map(adjustment(id="y-1", sku="sku-2", delta=4))
    foreign.get("adjustments", type=Array).append(body)
    send(foreign, stock.doc)
    assert stock.view() == StockLedger(stock.doc, "store-1").view()
    del body["delta"]
    send(foreign, stock.doc)
    assert stock.view() == StockLedger(stock.doc, "store-1").view()


def test_reading_a_document_with_foreign_content_writes_nothing() -> None:
    # Readers only read: viewing a polluted document writes nothing.
    cart = clean_cart()
    doc = with_foreign_content(cart.doc, append("ops", op(n="5")))
    before = snapshot(doc)
    Cart(doc, "cart-1").view()
    StockLedger(doc, "store-1").view()
    assert snapshot(doc) == before


# -- hypothesis: arbitrary foreign entries ---------------------------------------------------


# Strings from an alphabet that cannot spell a clean sku, id or line key, so that a foreign entry
# that happens to be valid never aliases a clean one.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63) + 1, 2**63 - 1),
    st.floats(),
    st.text("xyz \n!é\x00", max_size=6),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=8,
)


def field_values(*choices: object) -> st.SearchStrategy[object]:
    return st.one_of(st.sampled_from(choices), json_values)


foreign_ops = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "id": field_values("f.1", "f.2", "1.3"),
            "l": field_values(UNKNOWN_KEY, "e" * 32),
            "k": field_values("add", "set", "del"),
            "n": field_values(1, 2.0, 0, -1, 100_000, 100_001, 2.5),
            "m": field_values("guest-1"),
            "a": field_values(["guest-1"], []),
        },
    ),
)


@given(st.lists(foreign_ops, min_size=1, max_size=5))
def test_arbitrary_foreign_ops_never_break_the_view_and_are_all_accounted_for(entries: list[object]) -> None:
    cart = clean_cart()
    first = len(cart.doc.get("ops", type=Array))
    view = Cart(
        with_foreign_content(cart.doc, lambda doc: doc.get("ops", type=Array).extend(entries)), "cart-1"
    ).view()
    # Foreign ops only name lines with no metadata, so no valid line may change.
    assert_cart_meaning_kept(cart, view)
    paths = {issue.path for issue in view.issues}
    for offset, entry in enumerate(entries):
        line = entry.get("l") if isinstance(entry, dict) else None
        assert f"ops[{first + offset}]" in paths or f"ops[line={line}]" in paths


foreign_adjustments = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "id": field_values("f-1", "f-2"),
            "sku": field_values("sku-9"),
            "delta": field_values(1, -2.0, 0, 10**9 + 1),
            "reason": field_values("restock"),
            "actor": field_values("mallory"),
            "at": field_values(1, 2.0, -1),
            "ref": field_values("po-1"),
        },
    ),
)


@given(st.lists(foreign_adjustments, min_size=1, max_size=5))
def test_arbitrary_foreign_adjustments_never_break_the_view_and_are_all_accounted_for(
    entries: list[object],
) -> None:
    stock = clean_ledger()
    first = len(stock.doc.get("adjustments", type=Array))
    doc = with_foreign_content(stock.doc, lambda doc: doc.get("adjustments", type=Array).extend(entries))
    view = StockLedger(doc, "store-1").view()
    expected = stock.view()
    # Valid foreign adjustments never name a clean sku: every clean sku keeps its meaning.
    assert {sku: view.levels.get(sku) for sku in expected.levels} == expected.levels
    assert [a for a in view.adjustments if a.sku in expected.levels] == list(expected.adjustments)
    assert view.resolutions == expected.resolutions
    counted = {a.id for a in view.adjustments}
    paths = {issue.path for issue in view.issues}
    for offset, entry in enumerate(entries):
        assert f"adjustments[{first + offset}]" in paths or (
            isinstance(entry, dict) and entry.get("id") in counted
        )
