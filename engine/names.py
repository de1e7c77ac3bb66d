"""Document names: ``{tenant}/{kind}/{doc_id}``, checked once at the edge.

A :class:`DocName` is always valid: every way of making one (the constructor,
:meth:`DocName.parse`, :meth:`DocName.from_string`) applies the same rules, so
code past the edge can use ``str(name)`` as a room key or a store key safely.

Rules:

- ``tenant`` and ``doc_id`` match ``[A-Za-z0-9][A-Za-z0-9._~-]{0,127}``: ASCII
  only, 1 to 128 characters, starting with a letter or a digit. So a part is never
  empty, never ``.`` or ``..``, and never holds ``/``, ``%``, NUL, white space or a
  Unicode look-alike (``ａｃｍｅ`` is not ``acme``).
- ``kind`` is one of :data:`KINDS`, exactly (case matters).

:func:`check_raw_path` guards the router: ASGI servers hand the router a
*percent-decoded* path, so ``/ws/acme%2Fcart%2Fx`` or ``/ws/other/cart/..%2F..``
could reach a route as something its client never literally wrote. The raw path
must therefore hold nothing that decoding could change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from .errors import InvalidDocumentName

KINDS: tuple[str, ...] = ("cart", "stock", "order")
"""Document kinds the relay serves."""

PART_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._~-]{0,127}"
"""What a tenant or a document id looks like (matched against the whole part)."""

_PART = re.compile(PART_PATTERN, re.ASCII)

_PATH_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-/")
"""Bytes a raw request path may hold after the route prefix."""


def check_part(field: str, value: object) -> str:
    """Return ``value`` if it is a valid tenant or document id, else raise :class:`InvalidDocumentName`.

    ``field`` ("tenant", "doc_id") names the part in the error's reason.
    """
    if not isinstance(value, str):
        raise InvalidDocumentName(value, f"{field} must be a string, not {type(value).__name__}")
    if value == "":
        raise InvalidDocumentName(value, f"{field} is empty")
    if len(value) > 128:
        raise InvalidDocumentName(value, f"{field} is longer than 128 characters")
    if _PART.fullmatch(value) is None:
        raise InvalidDocumentName(
            value, f"{field} must start with an ASCII letter or digit and hold only A-Z a-z 0-9 . _ ~ -"
        )
    return value


def check_kind(value: object) -> str:
    """Return ``value`` if it is one of :data:`KINDS`, else raise :class:`InvalidDocumentName`."""
    if not isinstance(value, str) or value not in KINDS:
        raise InvalidDocumentName(value, f"kind must be one of {', '.join(KINDS)}")
    return value


@dataclass(frozen=True)
class DocName:
    """A valid document name; ``str()`` gives ``"tenant/kind/doc_id"``."""

    tenant: str
    kind: str
    doc_id: str

    def __post_init__(self) -> None:
        check_part("tenant", self.tenant)
        check_kind(self.kind)
        check_part("doc_id", self.doc_id)

    @classmethod
    def parse(cls, tenant: str, kind: str, doc_id: str) -> DocName:
        """Build a name from its three parts (e.g. route path parameters)."""
        return cls(tenant, kind, doc_id)

    @classmethod
    def from_string(cls, name: str) -> DocName:
        """Parse ``"tenant/kind/doc_id"``; anything but exactly three valid parts is refused."""
        if not isinstance(name, str):
            raise InvalidDocumentName(name, f"must be a string, not {type(name).__name__}")
        parts = name.split("/")
        if len(parts) != 3:
            raise InvalidDocumentName(name, "must have exactly three parts: tenant/kind/id")
        return cls(*parts)

    @property
    def parts(self) -> tuple[str, str, str]:
        """``(tenant, kind, doc_id)``."""
        return (self.tenant, self.kind, self.doc_id)

    def __str__(self) -> str:
        return f"{self.tenant}/{self.kind}/{self.doc_id}"


def check_raw_path(raw_path: bytes, prefix: bytes, *, encoded: bool = False) -> None:
    """Refuse a raw request path (ASGI ``scope["raw_path"]``) that decoding could change.

    The path must start with ``prefix`` and hold no non-ASCII or control byte and no
    ``.`` or ``..`` segment. Without ``encoded`` it holds no percent-encoded byte at all
    and, after the prefix, only the characters of a document name and ``/`` (a sync
    path). With ``encoded``, percent-encoding is allowed except for what could move the
    path or change a name (``/``, ``\\``, ``.``, ``%``, NUL) and must decode to UTF-8 (a
    REST path, whose skus and ids are checked again after decoding). Raises
    :class:`InvalidDocumentName`; returns None when the path is safe to route on.
    """
    raw = bytes(raw_path)
    shown = raw.decode("ascii", "backslashreplace")
    if not encoded and b"%" in raw:
        raise InvalidDocumentName(shown, "percent-encoded characters are not allowed in the path")
    if any(byte >= 0x80 for byte in raw):
        raise InvalidDocumentName(shown, "non-ASCII bytes are not allowed in the path")
    if encoded and any(byte < 0x21 for byte in raw):
        raise InvalidDocumentName(shown, "control bytes or spaces are not allowed in the path")
    if not raw.startswith(prefix):
        raise InvalidDocumentName(shown, f"path must start with {prefix.decode('ascii', 'backslashreplace')}")
    rest = raw[len(prefix) :]
    if any(segment in (b".", b"..") for segment in rest.split(b"/")):
        raise InvalidDocumentName(shown, "dot segments are not allowed in the path")
    if not encoded:
        if not _PATH_BYTES.issuperset(rest):
            raise InvalidDocumentName(shown, "path may hold only A-Z a-z 0-9 . _ ~ - and /")
        return
    lowered = raw.lower()
    if any(smuggler in lowered for smuggler in _SMUGGLERS):
        raise InvalidDocumentName(shown, "encoded / \\ . % or NUL in the path")
    try:  # routing decodes %FF as U+FFFD: a sku or id would silently become another one
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidDocumentName(shown, "percent-encoding that is not UTF-8") from None


_SMUGGLERS = (b"%2f", b"%5c", b"%2e", b"%25", b"%00")