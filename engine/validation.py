"""Input rules shared by every document kind.

Two directions, one set of rules:

* ``check_*`` functions guard the write path. They are strict (an ``int`` must be
  an ``int``, never a ``bool`` or a float) and raise :class:`ValidationError`.
* ``read_*`` functions parse what is already in a document, which any Yjs peer
  may have written. JavaScript has only float64 numbers and Yrs hands integers
  back as floats, so an integral float is accepted there; everything else
  follows the same bounds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .canonical import canonical_json
from .errors import ValidationError

MAX_ID_LENGTH = 128
"""Ids, skus, product ids, actors, reasons and references: 1 to 128 characters."""

MAX_QUANTITY = 100_000
"""Largest quantity one cart operation may add or set."""

MAX_DELTA = 1_000_000_000
"""Largest absolute stock delta of one adjustment."""

MAX_ATTRIBUTE_BYTES = 2048
"""Largest canonical JSON encoding of a line's attributes, in UTF-8 bytes."""

MAX_ATTRIBUTE_DEPTH = 4
MAX_ATTRIBUTE_KEYS = 32
MAX_ATTRIBUTE_ITEMS = 64
MAX_NOTE_LENGTH = 1024

MAX_SAFE_INTEGER = 2**53 - 1
"""Integers beyond this do not survive a JavaScript peer; timestamps must fit."""


def check_id(value: object, field: str = "id") -> str:
    """Return ``value`` if it is a bounded, printable, non-empty string."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {type(value).__name__}")
    if not value:
        raise ValidationError(field, "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise ValidationError(field, f"must be at most {MAX_ID_LENGTH} characters")
    if not value.isprintable():
        raise ValidationError(field, "must not contain control or unprintable characters")
    _check_utf8(value, field)
    if value != value.strip():
        raise ValidationError(field, "must not start or end with white space")
    return value


def check_int(value: object, field: str, low: int, high: int) -> int:
    """Return ``value`` if it is a true ``int`` (not a bool) within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValidationError(field, f"must be between {low} and {high}")
    return value


def check_quantity(value: object, field: str = "quantity", *, allow_zero: bool) -> int:
    """Quantities: integers from 1 (or 0 where allowed) to :data:`MAX_QUANTITY`."""
    return check_int(value, field, 0 if allow_zero else 1, MAX_QUANTITY)


def check_delta(value: object, field: str = "delta") -> int:
    """Stock deltas: non-zero integers within ±:data:`MAX_DELTA`."""
    delta = check_int(value, field, -MAX_DELTA, MAX_DELTA)
    if delta == 0:
        raise ValidationError(field, "must not be zero")
    return delta


def check_note(value: object, field: str = "note") -> str:
    """Free text: a string of at most :data:`MAX_NOTE_LENGTH` characters."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {type(value).__name__}")
    if len(value) > MAX_NOTE_LENGTH:
        raise ValidationError(field, f"must be at most {MAX_NOTE_LENGTH} characters")
    return _check_utf8(value, field)


def _check_utf8(value: str, field: str) -> str:
    """Lone surrogates cannot be stored (Yjs strings are UTF-8 on the wire)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(field, "must be valid Unicode (no lone surrogates)") from None
    return value


def check_timestamp(value: object, field: str = "at") -> int:
    """Accept epoch milliseconds (int) or an aware ``datetime``; return milliseconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationError(field, "datetime must carry a time zone")
        value = round(value.timestamp() * 1000)
    return check_int(value, field, 0, MAX_SAFE_INTEGER)


def check_attributes(value: object, field: str = "attributes") -> dict[str, Any]:
    """Return a normalised copy of a bounded JSON object.

    Keys are strings; values are null, booleans, integers, finite floats,
    strings, lists and objects, nested at most :data:`MAX_ATTRIBUTE_DEPTH` deep.
    Integral floats become integers, so ``{"w": 2.0}`` and ``{"w": 2}`` name the
    same line, as they would in JavaScript.
    """
    if not isinstance(value, Mapping):
        raise ValidationError(field, f"must be a JSON object, not {type(value).__name__}")
    normalised = _normalise_json(value, field, depth=1)
    if len(canonical_json(normalised).encode()) > MAX_ATTRIBUTE_BYTES:
        raise ValidationError(field, f"must encode to at most {MAX_ATTRIBUTE_BYTES} bytes")
    assert isinstance(normalised, dict)
    return normalised


def _normalise_json(value: object, field: str, depth: int) -> Any:
    if depth > MAX_ATTRIBUTE_DEPTH + 1:
        raise ValidationError(field, f"must nest at most {MAX_ATTRIBUTE_DEPTH} levels deep")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _check_utf8(value, field)
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValidationError(field, "integers must stay within ±2**53-1")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(field, "numbers must be finite (no NaN or infinity)")
        if value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
            return int(value)
        return value
    if isinstance(value, Mapping):
        if len(value) > MAX_ATTRIBUTE_KEYS:
            raise ValidationError(field, f"objects must have at most {MAX_ATTRIBUTE_KEYS} keys")
        out: dict[str, Any] = {}
        for key in sorted(value, key=_key_order):
            if not isinstance(key, str) or not key or len(key) > MAX_ID_LENGTH:
                raise ValidationError(field, "keys must be non-empty strings of at most 128 characters")
            _check_utf8(key, field)
            out[key] = _normalise_json(value[key], field, depth + 1)
        return out  # keys sorted: every replica renders the same value the same way
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_ATTRIBUTE_ITEMS:
            raise ValidationError(field, f"lists must have at most {MAX_ATTRIBUTE_ITEMS} items")
        return [_normalise_json(item, field, depth + 1) for item in value]
    raise ValidationError(field, f"{type(value).__name__} is not a JSON value")


def _key_order(key: object) -> tuple[int, str]:
    return (0, key) if isinstance(key, str) else (1, repr(key))


# -- read side: parsing what a peer stored ------------------------------------


def read_int(value: object, field: str, low: int, high: int) -> int:
    """Like :func:`check_int`, but also accepts integral floats (JavaScript numbers)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return check_int(value, field, low, high)


def read_mapping(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(field, f"must be a JSON object, not {type(value).__name__}")
    return value
