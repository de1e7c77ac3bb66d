"""Canonical JSON: RFC 8785, the JSON Canonicalization Scheme (JCS).

One value, one string, in every language: this is what line keys and conflict ids
hash, so a JavaScript peer (``JSON.stringify`` rules) and the engine must agree
byte for byte. The rules:

* no white space; object members sorted by their keys' UTF-16 code units (not by
  code points: an astral character such as 😀 sorts before U+E000..U+FFFF);
* strings as ``JSON.stringify`` writes them: ``"`` and ``\\`` escaped, the
  controls ``\\b \\f \\n \\r \\t`` by name, other characters below U+0020 as
  ``\\u00xx``, lone surrogates as ``\\udxxx``, everything else kept (UTF-8);
* numbers as ECMAScript's ``Number.prototype.toString``: the shortest digits that
  round-trip (Python's ``repr`` finds the same ones), ``-0`` as ``0``, integers
  without a fraction up to 1e21, exponents as ``1e-7`` and ``1e+21``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}

_MAX_EXACT = 2**53
"""Integers up to this size are exact float64 values, written digit for digit."""


def canonical_json(value: Any) -> str:
    """The RFC 8785 form of a JSON value (None, bool, int, float, str, lists, string-keyed mappings).

    Raises :class:`ValueError` for NaN, infinities, non-string keys and anything that is not JSON.
    """
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value) if abs(value) <= _MAX_EXACT else format_number(float(value)))
    elif isinstance(value, float):
        out.append(format_number(value))
    elif isinstance(value, str):
        out.append(quote_string(value))
    elif isinstance(value, Mapping):
        keys = list(value)
        for key in keys:
            if not isinstance(key, str):
                raise ValueError(f"object keys must be strings, not {type(key).__name__}")
        out.append("{")
        for position, key in enumerate(sorted(keys, key=_utf16_order)):
            if position:
                out.append(",")
            out.append(quote_string(key))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for position, item in enumerate(value):
            if position:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise ValueError(f"{type(value).__name__} is not a JSON value")


def _utf16_order(key: str) -> bytes:
    # Big-endian UTF-16 bytes compare exactly as the sequences of code units do.
    return key.encode("utf-16-be", "surrogatepass")


def quote_string(text: str) -> str:
    """``text`` as ``JSON.stringify`` writes it."""
    out = ['"']
    for char in text:
        escaped = _ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif char < " " or "\ud800" <= char <= "\udfff":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def format_number(value: float) -> str:
    """``value`` as ECMAScript's ``Number.prototype.toString`` (radix 10) writes it."""
    if not math.isfinite(value):
        raise ValueError("NaN and infinities have no JSON form")
    if value == 0:
        return "0"
    if value < 0:
        return "-" + format_number(-value)
    digits, point = _shortest_digits(value)
    k = len(digits)
    if k <= point <= 21:
        return digits + "0" * (point - k)
    if 0 < point <= 21:
        return digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return "0." + "0" * -point + digits
    exponent = point - 1
    sign = "+" if exponent >= 0 else "-"
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{sign}{abs(exponent)}"


def _shortest_digits(value: float) -> tuple[str, int]:
    """The shortest round-tripping decimal digits of a positive float, and ``n`` such that
    ``value = 0.digits × 10**n`` (ECMAScript's ``s`` and ``n``)."""
    text = repr(value)
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    if fraction == "0":
        fraction = ""
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + (int(exponent) if exponent else 0)
    if whole == "0":
        # 0.000123 -> digits "123", the point moves left past the zeros we stripped
        stripped = len(fraction) - len(fraction.lstrip("0"))
        point = -stripped + (int(exponent) if exponent else 0)
    digits = digits.rstrip("0")
    return digits, point
