"""RFC 8785 canonical JSON: numbers as ECMAScript writes them, keys in UTF-16 order."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncline.engine.canonical import canonical_json, format_number


@pytest.mark.parametrize(
    ("value", "expected"),
    [  # RFC 8785 appendix B's number samples, as IEEE 754 values
        (0.0, "0"), (-0.0, "0"), (5e-324, "5e-324"), (-5e-324, "-5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"), (9007199254740992.0, "9007199254740992"),
        (295147905179352830000.0, "295147905179352830000"), (9.999999999999997e22, "9.999999999999997e+22"),
        (1e23, "1e+23"), (1e21, "1e+21"), (9.999999999999999e20, "999999999999999900000"),
        (1e-7, "1e-7"), (1e-6, "0.000001"), (0.1 + 0.2, "0.30000000000000004"), (123.0, "123"),
    ],
)
def test_numbers_are_written_as_ecmascript_writes_them(value: float, expected: str) -> None:
    assert format_number(value) == expected


def test_keys_sort_by_utf16_code_units_and_strings_escape_as_json_stringify() -> None:
    value = {"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": 6, "\u00f6": 7}
    assert canonical_json(value) == '{"\\r":2,"1":4,"\u0080":6,"\u00f6":7,"\u20ac":1,"\U0001f600":5,"\ufb33":3}'
    assert canonical_json("\u2028\x7f\x00\x1f\"\\/\ud800") == '"\u2028\x7f\\u0000\\u001f\\"\\\\/\\ud800"'


def test_what_has_no_json_form_is_refused() -> None:
    for bad in (math.nan, math.inf, {1: "x"}, object()):
        with pytest.raises(ValueError):
            canonical_json(bad)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_float_round_trips_through_its_canonical_form(value: float) -> None:
    assert float(format_number(value)) == value or (value == 0 and format_number(value) == "0")


@given(st.recursive(st.none() | st.booleans() | st.integers(-(2**53), 2**53)
                    | st.floats(-(2.0**53), 2.0**53, allow_nan=False) | st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20))
def test_canonical_json_is_json_that_reads_back_to_the_value(value: object) -> None:
    # (Beyond 2**53 a float's shortest digits read back as a Python int of another value.)
    assert json.loads(canonical_json(value)) == value
