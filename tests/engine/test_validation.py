"""Every input rule of the write path, with typed errors, and no effect on the document when refused."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from syncline.engine import Cart, StockLedger, UnknownLine, ValidationError, line_key
from syncline.engine.validation import (
    MAX_ATTRIBUTE_BYTES,
    MAX_ATTRIBUTE_DEPTH,
    MAX_ATTRIBUTE_ITEMS,
    MAX_ATTRIBUTE_KEYS,
    MAX_DELTA,
    MAX_ID_LENGTH,
    MAX_NOTE_LENGTH,
    MAX_QUANTITY,
    MAX_SAFE_INTEGER,
    canonical_json,
    check_attributes,
    check_delta,
    check_id,
    check_note,
    check_quantity,
    check_timestamp,
)

from .helpers import copy_doc, snapshot, sync

NOT_INTEGERS = [
    pytest.param(2.0, id="integral-float"),
    pytest.param(2.5, id="float"),
    pytest.param(math.nan, id="nan"),
    pytest.param(math.inf, id="inf"),
    pytest.param(-math.inf, id="-inf"),
    pytest.param(True, id="bool-true"),
    pytest.param(False, id="bool-false"),
    pytest.param("2", id="str"),
    pytest.param(None, id="none"),
    pytest.param(Decimal(2), id="decimal"),
    pytest.param([2], id="list"),
]

BAD_IDS = [
    pytest.param("", "must not be empty", id="empty"),
    pytest.param("x" * (MAX_ID_LENGTH + 1), "at most", id="129-chars"),
    pytest.param("a\x00b", "control", id="nul"),
    pytest.param("a\nb", "control", id="newline"),
    pytest.param("a\tb", "control", id="tab"),
    pytest.param("a\u200bb", "control", id="zero-width-space"),
    pytest.param("\ud800", "control", id="lone-surrogate"),
    pytest.param(" a", "white space", id="leading-space"),
    pytest.param("a ", "white space", id="trailing-space"),
    pytest.param("\u00a0a", None, id="leading-nbsp"),
    pytest.param(5, "string", id="int"),
    pytest.param(None, "string", id="none"),
    pytest.param(b"abc", "string", id="bytes"),
    pytest.param(["a"], "string", id="list"),
]

UTC = timezone.utc


def nested(depth: int, leaf: object = 1) -> dict[str, Any]:
    """``depth`` objects inside one another, the innermost holding ``leaf``."""
    value: Any = leaf
    for level in range(depth):
        value = {f"k{level}": value}
    return value


# -- scalar rules ------------------------------------------------------------------


@pytest.mark.parametrize("value", NOT_INTEGERS)
def test_a_quantity_must_be_a_true_integer(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        check_quantity(value, allow_zero=False)
    assert info.value.field == "quantity"
    assert "integer" in info.value.reason


@pytest.mark.parametrize("value", NOT_INTEGERS)
def test_a_delta_must_be_a_true_integer(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        check_delta(value)
    assert info.value.field == "delta"
    assert "integer" in info.value.reason


def test_quantities_are_bounded_by_max_quantity_and_zero_only_where_allowed() -> None:
    assert check_quantity(1, allow_zero=False) == 1
    assert check_quantity(MAX_QUANTITY, allow_zero=False) == MAX_QUANTITY
    assert check_quantity(0, allow_zero=True) == 0
    for value, allow_zero in [(0, False), (-1, True), (-1, False), (MAX_QUANTITY + 1, True), (10**30, True)]:
        with pytest.raises(ValidationError) as info:
            check_quantity(value, allow_zero=allow_zero)
        assert info.value.field == "quantity"
        assert "between" in info.value.reason


def test_deltas_are_bounded_by_max_delta_and_never_zero() -> None:
    assert check_delta(MAX_DELTA) == MAX_DELTA
    assert check_delta(-MAX_DELTA) == -MAX_DELTA
    assert check_delta(-1) == -1
    with pytest.raises(ValidationError) as info:
        check_delta(0)
    assert (info.value.field, info.value.reason) == ("delta", "must not be zero")
    for value in (MAX_DELTA + 1, -MAX_DELTA - 1, 2**64):
        with pytest.raises(ValidationError) as info:
            check_delta(value)
        assert info.value.field == "delta"


def test_validation_errors_carry_field_and_reason_and_are_value_errors() -> None:
    with pytest.raises(ValueError) as info:
        check_quantity(-3, "qty", allow_zero=True)
    assert isinstance(info.value, ValidationError)
    assert info.value.field == "qty"
    assert str(info.value) == f"qty: {info.value.reason}"


@pytest.mark.parametrize(("value", "reason"), BAD_IDS)
def test_ids_must_be_bounded_printable_trimmed_strings(value: object, reason: str | None) -> None:
    with pytest.raises(ValidationError) as info:
        check_id(value, "sku")
    assert info.value.field == "sku"
    if reason is not None:
        assert reason in info.value.reason


def test_ids_up_to_128_printable_characters_are_accepted_unchanged() -> None:
    for value in ("a", "x" * MAX_ID_LENGTH, "SKU 12/b", "café-ü-€", "a b"):
        assert check_id(value) == value


def test_notes_are_bounded_strings() -> None:
    assert check_note("") == ""
    assert check_note("n" * MAX_NOTE_LENGTH) == "n" * MAX_NOTE_LENGTH
    for value in ("n" * (MAX_NOTE_LENGTH + 1), 5, None):
        with pytest.raises(ValidationError) as info:
            check_note(value)
        assert info.value.field == "note"


def test_an_aware_datetime_becomes_epoch_milliseconds() -> None:
    paris_summer = timezone(timedelta(hours=2))
    assert check_timestamp(datetime(2024, 6, 1, 12, 0, tzinfo=paris_summer)) == 1717236000000
    assert check_timestamp(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert check_timestamp(1717236000000) == 1717236000000


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        check_timestamp(datetime(2024, 6, 1, 12, 0))
    assert info.value.field == "at"
    assert "time zone" in info.value.reason


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(-1, id="negative-int"),
        pytest.param(MAX_SAFE_INTEGER + 1, id="beyond-2**53"),
        pytest.param(1.5e12, id="float"),
        pytest.param(True, id="bool"),
        pytest.param("1717236000000", id="str"),
        pytest.param(datetime(1969, 12, 31, 23, 59, tzinfo=UTC), id="aware-datetime-before-1970"),
    ],
)
def test_a_timestamp_must_be_a_non_negative_safe_integer_of_milliseconds(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        check_timestamp(value)
    assert info.value.field == "at"


# -- attributes --------------------------------------------------------------------


def test_attributes_are_normalised_with_sorted_keys_and_integral_floats_as_ints() -> None:
    value = check_attributes({"w": 2.0, "b": {"z": [1.0, 2.5], "a": None}, "a": True})
    assert value == {"a": True, "b": {"a": None, "z": [1, 2.5]}, "w": 2}
    assert list(value) == ["a", "b", "w"]
    assert type(value["w"]) is int
    assert check_attributes({"t": (1, 2)}) == {"t": [1, 2]}


@pytest.mark.parametrize(
    "value",
    [[("a", 1)], "color=red", None, 5, {"a"}],
    ids=["list-of-pairs", "str", "none", "int", "set"],
)
def test_attributes_must_be_an_object(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        check_attributes(value)
    assert info.value.field == "attributes"
    assert "JSON object" in info.value.reason


@pytest.mark.parametrize(
    "value",
    [{1: "a"}, {None: "a"}, {("a",): 1}, {"": 1}, {"k" * (MAX_ID_LENGTH + 1): 1}, {"ok": {2: "nested"}}],
    ids=["int-key", "none-key", "tuple-key", "empty-key", "long-key", "nested-int-key"],
)
def test_attribute_keys_must_be_non_empty_bounded_strings(value: dict[Any, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        check_attributes(value)
    assert info.value.field == "attributes"
    assert "keys" in info.value.reason


def test_attributes_nest_at_most_max_depth_levels() -> None:
    assert check_attributes(nested(MAX_ATTRIBUTE_DEPTH)) == nested(MAX_ATTRIBUTE_DEPTH)
    for value in (nested(MAX_ATTRIBUTE_DEPTH + 1), nested(50), {"a": [[[[[1]]]]]}):
        with pytest.raises(ValidationError) as info:
            check_attributes(value)
        assert "deep" in info.value.reason


def test_self_referencing_attributes_are_refused_not_a_recursion_error() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(ValidationError):
        check_attributes(loop)


def test_attributes_have_at_most_max_keys_per_object_and_max_items_per_list() -> None:
    check_attributes({f"k{i}": i for i in range(MAX_ATTRIBUTE_KEYS)})
    check_attributes({"l": list(range(MAX_ATTRIBUTE_ITEMS))})
    with pytest.raises(ValidationError) as info:
        check_attributes({f"k{i}": i for i in range(MAX_ATTRIBUTE_KEYS + 1)})
    assert "keys" in info.value.reason
    with pytest.raises(ValidationError) as info:
        check_attributes({"inner": {f"k{i}": i for i in range(MAX_ATTRIBUTE_KEYS + 1)}})
    assert "keys" in info.value.reason
    with pytest.raises(ValidationError) as info:
        check_attributes({"l": list(range(MAX_ATTRIBUTE_ITEMS + 1))})
    assert "items" in info.value.reason


def test_attributes_encode_to_at_most_max_attribute_bytes_of_utf8() -> None:
    overhead = len(canonical_json({"a": ""}).encode())
    at_limit = {"a": "x" * (MAX_ATTRIBUTE_BYTES - overhead)}
    assert len(canonical_json(check_attributes(at_limit)).encode()) == MAX_ATTRIBUTE_BYTES
    with pytest.raises(ValidationError) as info:
        check_attributes({"a": "x" * (MAX_ATTRIBUTE_BYTES - overhead + 1)})
    assert "bytes" in info.value.reason
    # 700 characters, but 2100 bytes once encoded: the limit is on bytes.
    with pytest.raises(ValidationError) as info:
        check_attributes({"a": "€" * 700})
    assert "bytes" in info.value.reason


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, [1.0, math.nan]],
    ids=["nan", "inf", "-inf", "nan-in-list"],
)
def test_attribute_numbers_must_be_finite(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        check_attributes({"deep": {"w": value}})
    assert "finite" in info.value.reason


def test_attribute_integers_must_survive_a_javascript_peer() -> None:
    assert check_attributes({"n": MAX_SAFE_INTEGER}) == {"n": MAX_SAFE_INTEGER}
    assert check_attributes({"n": -MAX_SAFE_INTEGER}) == {"n": -MAX_SAFE_INTEGER}
    for value in (2**53, -(2**53), 2**64, 10**100):
        with pytest.raises(ValidationError) as info:
            check_attributes({"n": value})
        assert "2**53" in info.value.reason


@pytest.mark.parametrize(
    "value",
    [{1, 2}, frozenset(), b"bytes", bytearray(b"x"), Decimal("1.5"), object(), 1 + 2j, datetime(2024, 1, 1)],
    ids=["set", "frozenset", "bytes", "bytearray", "decimal", "object", "complex", "datetime"],
)
def test_attribute_values_must_be_json_values(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        check_attributes({"ok": 1, "bad": [value]})
    assert info.value.field == "attributes"
    assert "not a JSON value" in info.value.reason


@pytest.mark.parametrize("where", ["value", "key"])
def test_attributes_holding_a_lone_surrogate_are_refused_with_a_validation_error(where: str) -> None:
    # A lone surrogate is a valid Python str but cannot be encoded as UTF-8 (nor stored by Yrs).
    value = {"color": "\udcff"} if where == "value" else {"\udcff": "red"}
    with pytest.raises(ValidationError):
        check_attributes(value)


# -- hypothesis: arbitrary input either validates or raises ValidationError -------------

any_text = st.text(st.characters(exclude_categories=()), max_size=12)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
    st.binary(max_size=4),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.just(object()),
)
json_ish = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.tuples(children, children),
        st.frozensets(st.integers(), max_size=2),
        st.dictionaries(st.one_of(any_text, st.integers(), st.none()), children, max_size=5),
    ),
    max_leaves=30,
)


@given(json_ish)
def test_arbitrary_json_ish_values_either_validate_or_raise_validation_error(value: object) -> None:
    try:
        normalised = check_attributes(value)
    except ValidationError as exc:
        assert exc.field == "attributes"
        return
    # What validates is canonical, stable and within bounds.
    assert check_attributes(normalised) == normalised
    assert len(canonical_json(normalised).encode()) <= MAX_ATTRIBUTE_BYTES


@given(st.one_of(any_text, scalars, st.lists(any_text, max_size=2)))
def test_arbitrary_values_are_valid_ids_or_raise_validation_error(value: object) -> None:
    try:
        assert check_id(value) == value
    except ValidationError as exc:
        assert exc.field == "id"


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(st.integers(-1000, 1000), st.text(max_size=8)),
        max_size=8,
    )
)
def test_key_order_never_changes_the_line(attributes: dict[str, Any]) -> None:
    reversed_order = dict(reversed(list(attributes.items())))
    assert line_key("sku-1", attributes) == line_key("sku-1", reversed_order)


# -- the write path: invalid input raises and writes nothing ---------------------------


def open_cart() -> tuple[Cart, str]:
    cart = Cart.new("cart-1", client_id=1, clock=lambda: 1_000)
    key = cart.add_item("sku-1", 2, {"size": "M"})
    return cart, key


BAD_ADD_ITEM: list[Any] = [
    *[
        pytest.param({"quantity": value}, "quantity", id=f"quantity-{p}")
        for p, value in [
            ("float", 2.0),
            ("nan", math.nan),
            ("inf", math.inf),
            ("bool", True),
            ("str", "2"),
            ("none", None),
            ("decimal", Decimal(2)),
            ("zero", 0),
            ("negative", -1),
            ("too-big", MAX_QUANTITY + 1),
        ]
    ],
    *[
        pytest.param({"product_id": value}, "product_id", id=f"product-{p}")
        for p, value in [
            ("empty", ""),
            ("long", "p" * 129),
            ("nul", "a\x00"),
            ("newline", "a\nb"),
            ("padded", " a "),
            ("int", 7),
            ("none", None),
        ]
    ],
    *[
        pytest.param({"attributes": value}, "attributes", id=f"attributes-{p}")
        for p, value in [
            ("list", ["a"]),
            ("int-key", {1: "a"}),
            ("deep", nested(MAX_ATTRIBUTE_DEPTH + 1)),
            ("many-keys", {f"k{i}": i for i in range(MAX_ATTRIBUTE_KEYS + 1)}),
            ("big", {"a": "x" * MAX_ATTRIBUTE_BYTES}),
            ("nan", {"a": math.nan}),
            ("huge-int", {"a": 2**53}),
            ("set", {"a": {1}}),
            ("bytes", {"a": b"x"}),
            ("object", {"a": object()}),
        ]
    ],
]


@pytest.mark.parametrize(("change", "field"), BAD_ADD_ITEM)
def test_add_item_refuses_invalid_input_and_leaves_the_document_unchanged(
    change: dict[str, Any], field: str
) -> None:
    cart, _ = open_cart()
    before = snapshot(cart.doc)
    arguments: dict[str, Any] = {"product_id": "sku-2", "quantity": 1, "attributes": {"size": "L"}, **change}
    with pytest.raises(ValidationError) as info:
        cart.add_item(arguments["product_id"], arguments["quantity"], arguments["attributes"])
    assert info.value.field == field
    assert snapshot(cart.doc) == before


@pytest.mark.parametrize(
    "quantity",
    [2.0, math.nan, math.inf, True, "2", None, Decimal(2), -1, MAX_QUANTITY + 1],
    ids=["float", "nan", "inf", "bool", "str", "none", "decimal", "negative", "too-big"],
)
def test_set_quantity_refuses_invalid_quantities_and_leaves_the_document_unchanged(quantity: object) -> None:
    cart, key = open_cart()
    before = snapshot(cart.doc)
    with pytest.raises(ValidationError) as info:
        cart.set_quantity(key, quantity)  # type: ignore[arg-type]
    assert info.value.field == "quantity"
    assert snapshot(cart.doc) == before
    assert cart.quantity(key) == 2


@pytest.mark.parametrize("key", [None, 5, b"key", ["k"]], ids=["none", "int", "bytes", "list"])
def test_set_quantity_with_a_key_that_is_not_a_string_raises_a_typed_error(key: object) -> None:
    cart, _ = open_cart()
    before = snapshot(cart.doc)
    with pytest.raises((ValidationError, UnknownLine)):
        cart.set_quantity(key, 1)  # type: ignore[arg-type]
    assert snapshot(cart.doc) == before


def open_ledger() -> StockLedger:
    ledger = StockLedger.new("store-1", client_id=1, clock=lambda: 5_000)
    ledger.record("adj-1", "sku-1", 10, reason="restock", actor="alice", at=1_000)
    return ledger


VALID_RECORD: dict[str, Any] = {
    "adjustment_id": "adj-2",
    "sku": "sku-1",
    "delta": -3,
    "reason": "sale",
    "actor": "bob",
    "at": 2_000,
    "ref": None,
}

BAD_RECORD: list[Any] = [
    *[
        pytest.param({"delta": value}, "delta", id=f"delta-{p}")
        for p, value in [
            ("float", -3.0),
            ("nan", math.nan),
            ("inf", -math.inf),
            ("bool", True),
            ("str", "-3"),
            ("none", None),
            ("decimal", Decimal(-3)),
            ("zero", 0),
            ("too-big", MAX_DELTA + 1),
            ("too-small", -MAX_DELTA - 1),
        ]
    ],
    *[
        pytest.param({name: value}, field, id=f"{name}-{p}")
        for name, field in [
            ("adjustment_id", "id"),
            ("sku", "sku"),
            ("reason", "reason"),
            ("actor", "actor"),
        ]
        for p, value in [
            ("empty", ""),
            ("long", "x" * 129),
            ("nul", "a\x00"),
            ("newline", "a\n"),
            ("padded", " a"),
            ("int", 3),
            ("none", None),
        ]
    ],
    *[pytest.param({"ref": value}, "ref", id=f"ref-{p}") for p, value in [("empty", ""), ("int", 4)]],
    *[
        pytest.param({"at": value}, "at", id=f"at-{p}")
        for p, value in [
            ("negative", -1),
            ("naive", datetime(2024, 1, 1)),
            ("float", 2000.0),
            ("bool", True),
            ("str", "2000"),
            ("too-big", MAX_SAFE_INTEGER + 1),
            ("aware-before-1970", datetime(1960, 1, 1, tzinfo=UTC)),
        ]
    ],
]


@pytest.mark.parametrize(("change", "field"), BAD_RECORD)
def test_record_refuses_invalid_input_and_leaves_the_document_unchanged(
    change: dict[str, Any], field: str
) -> None:
    ledger = open_ledger()
    before = snapshot(ledger.doc)
    arguments = {**VALID_RECORD, **change}
    with pytest.raises(ValidationError) as info:
        ledger.record(
            arguments["adjustment_id"],
            arguments["sku"],
            arguments["delta"],
            reason=arguments["reason"],
            actor=arguments["actor"],
            at=arguments["at"],
            ref=arguments["ref"],
        )
    assert info.value.field == field
    assert snapshot(ledger.doc) == before
    assert ledger.level("sku-1") == 10


def test_record_accepts_an_aware_datetime_and_stores_milliseconds() -> None:
    ledger = open_ledger()
    at = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
    adjustment = ledger.record("adj-2", "sku-1", -1, reason="sale", actor="bob", at=at)
    assert adjustment.at == 1717236000000
    assert StockLedger(copy_doc(ledger.doc, 2), "store-1").view().adjustments[-1] == adjustment


def oversold_ledger() -> tuple[StockLedger, str]:
    """A ledger with one open conflict, reached by two offline sales of the last unit."""
    a = StockLedger.new("store-1", client_id=1, clock=lambda: 5_000)
    a.record("restock", "sku-1", 1, reason="restock", actor="alice", at=1_000)
    b = StockLedger(copy_doc(a.doc, 2), "store-1")
    a.record("sale-a", "sku-1", -1, reason="sale", actor="till-a", at=2_000)
    b.record("sale-b", "sku-1", -1, reason="sale", actor="till-b", at=2_001)
    sync(a.doc, b.doc)
    (conflict,) = a.conflicts()
    return a, conflict.id


BAD_RESOLVE: list[Any] = [
    pytest.param({"strategy": "ignore"}, "strategy", id="strategy-unknown"),
    pytest.param({"strategy": None}, "strategy", id="strategy-none"),
    pytest.param({"actor": ""}, "actor", id="actor-empty"),
    pytest.param({"actor": "a\x00"}, "actor", id="actor-nul"),
    pytest.param({"actor": None}, "actor", id="actor-none"),
    pytest.param({"at": -5}, "at", id="at-negative"),
    pytest.param({"at": datetime(2024, 1, 1)}, "at", id="at-naive"),
    pytest.param({"at": 1.5}, "at", id="at-float"),
    pytest.param({"note": "n" * (MAX_NOTE_LENGTH + 1)}, "note", id="note-long"),
    pytest.param({"note": 5}, "note", id="note-int"),
    pytest.param({"note": "bad \udc80 note"}, "note", id="note-lone-surrogate"),
    pytest.param({"resolution_id": ""}, "resolution_id", id="resolution-id-empty"),
    pytest.param({"resolution_id": "r\n"}, "resolution_id", id="resolution-id-newline"),
    pytest.param({"strategy": "merge", "level": None}, "level", id="merge-without-level"),
    pytest.param({"strategy": "merge", "level": -1}, "level", id="merge-negative-level"),
    pytest.param({"strategy": "merge", "level": 2.0}, "level", id="merge-float-level"),
    pytest.param({"strategy": "merge", "level": True}, "level", id="merge-bool-level"),
    pytest.param({"strategy": "merge", "level": "3"}, "level", id="merge-str-level"),
    pytest.param({"strategy": "merge", "level": MAX_DELTA + 1}, "level", id="merge-huge-level"),
    pytest.param({"strategy": "accept", "level": 3}, "level", id="accept-with-level"),
    pytest.param({"strategy": "compensate", "level": 0}, "level", id="compensate-with-level"),
]


@pytest.mark.parametrize(("change", "field"), BAD_RESOLVE)
def test_resolve_refuses_invalid_input_and_leaves_the_document_unchanged(
    change: dict[str, Any], field: str
) -> None:
    ledger, conflict_id = oversold_ledger()
    before = snapshot(ledger.doc)
    arguments: dict[str, Any] = {
        "strategy": "compensate",
        "actor": "manager",
        "at": 9_000,
        "note": None,
        "level": None,
        "resolution_id": None,
        **change,
    }
    strategy = arguments.pop("strategy")
    with pytest.raises(ValidationError) as info:
        ledger.resolve(conflict_id, strategy, **arguments)
    assert info.value.field == field
    assert snapshot(ledger.doc) == before
    assert [c.id for c in ledger.conflicts()] == [conflict_id]


@given(st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(any_text, scalars, max_size=3)))
def test_no_arbitrary_value_in_any_argument_of_add_item_escapes_as_another_exception(value: object) -> None:
    cart, _ = open_cart()
    for call in (
        lambda: cart.add_item(value, 1),  # type: ignore[arg-type]
        lambda: cart.add_item("sku-9", value),  # type: ignore[arg-type]
        lambda: cart.add_item("sku-9", 1, value),  # type: ignore[arg-type]
    ):
        before = snapshot(cart.doc)
        try:
            call()
        except ValidationError:
            assert snapshot(cart.doc) == before


@given(st.one_of(scalars, st.lists(scalars, max_size=3)))
def test_no_arbitrary_value_in_any_argument_of_record_escapes_as_another_exception(value: object) -> None:
    ledger = open_ledger()
    for name in ("adjustment_id", "sku", "delta", "reason", "actor", "at"):
        # A fresh id per argument (longer than any generated text), so no call repeats another's id.
        arguments = {**VALID_RECORD, "adjustment_id": f"adjustment-for-{name}", name: value}
        before = snapshot(ledger.doc)
        try:
            ledger.record(
                arguments["adjustment_id"],
                arguments["sku"],
                arguments["delta"],
                reason=arguments["reason"],
                actor=arguments["actor"],
                at=arguments["at"],
            )
        except ValidationError:
            assert snapshot(ledger.doc) == before


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**53) + 1, 2**53 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(min_size=1, max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(min_size=1, max_size=6), json_values, max_size=5))
def test_valid_attributes_survive_a_round_trip_through_the_document_unchanged(
    attributes: dict[str, Any],
) -> None:
    try:
        expected = check_attributes(attributes)
    except ValidationError:
        return  # too deep for the rule: covered by the tests above
    cart = Cart.new("cart-1", client_id=1)
    key = cart.add_item("sku-1", 1, attributes)
    replica = Cart(copy_doc(cart.doc, 2), "cart-1")
    view = replica.view()
    assert view.issues == ()
    assert [(line.key, line.attributes) for line in view.lines] == [(key, expected)]
    assert key == line_key("sku-1", expected)
