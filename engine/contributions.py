"""Guest-merge contributions: what a merge carries of a guest cart's history, counted once.

A merge writes, on every line of the guest cart, one ``merge`` operation into the
target cart (see docs/semantics.md, "Cart document"):

* ``g``: the guest cart's id;
* ``o``: the guest's operations present on that line, as the merging device saw
  them: ``[id, n]`` for an add, ``[id, n, "set"]`` for a set, and ``[key, n, "merged"]``
  for what the guest line itself holds from an earlier merge of cart ``key`` into it;
* ``v``: the guest document's state vector on that device, ``{client id hex: clock}``.

The target counts, per guest and line, the union of the entries of every
contribution present, each id once, folded with the cart rule (largest set plus
the adds). An entry one contribution carries and another one's ``v`` covers
without carrying was replaced on the guest (a guest set or clear deleted it) before
that other merge, so it no longer counts. ``v`` covers an operation id written as
Syncline writes them, ``{client hex}.{clock hex}``, when its clock for that client
is larger than the id's clock. So two devices that each merged a part of the
guest's history sum to the guest's whole quantity, and a replay adds nothing.

A set, remove or clear on the target absorbs the contributions it observed:
``ag`` (on the set) maps each guest id to ``{"v", "o", "m"}``, the union of their
state vectors, the entry ids those do not cover, and the ``merged`` keys, so what
it replaced never counts again while guest operations it had not seen still do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .canonical import canonical_json
from .errors import ValidationError
from .validation import MAX_QUANTITY, MAX_SAFE_INTEGER, check_id, read_int, read_mapping

MAX_ENTRIES = 1024
"""Most guest entries (and state vector clients) one contribution or absorption may hold."""

MAX_GUESTS = 1024
"""Most guest carts one set operation may record as absorbed."""

EntryKind = Literal["add", "set", "merged"]

_SYNCLINE_ID = re.compile(r"([0-9a-f]{1,14})\.([0-9a-f]{1,14})")


@dataclass(frozen=True)
class Entry:
    """One guest operation (or the part of a guest line from an earlier merge into it)."""

    kind: EntryKind
    id: str
    n: int

    @property
    def identity(self) -> tuple[bool, str]:
        """Entries count once per identity: op ids, and ``merged`` keys apart from them."""
        return (self.kind == "merged", self.id)

    def to_json(self) -> list[Any]:
        return [self.id, self.n] if self.kind == "add" else [self.id, self.n, self.kind]


@dataclass(frozen=True)
class Contribution:
    """A parsed ``merge`` operation: guest ``guest``'s entries on one line, and its state vector."""

    guest: str
    entries: tuple[Entry, ...]
    vector: Mapping[int, int]

    def identities(self) -> frozenset[tuple[bool, str]]:
        return frozenset(entry.identity for entry in self.entries)


@dataclass(frozen=True)
class Absorbed:
    """What target sets replaced of one guest's contributions (the ``ag`` value of a set)."""

    vector: Mapping[int, int] = field(default_factory=dict)
    ids: frozenset[str] = frozenset()
    merged: frozenset[str] = frozenset()

    def covers(self, entry: Entry) -> bool:
        if entry.kind == "merged":
            return entry.id in self.merged
        return entry.id in self.ids or covered(entry.id, self.vector)

    def union(self, other: Absorbed) -> Absorbed:
        return Absorbed(max_vector(self.vector, other.vector), self.ids | other.ids, self.merged | other.merged)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"v": vector_json(self.vector)}
        ids = sorted(i for i in self.ids if not covered(i, self.vector))
        if ids:
            body["o"] = ids
        if self.merged:
            body["m"] = sorted(self.merged)
        return body


def covered(op_id: str, vector: Mapping[int, int]) -> bool:
    """Whether a device at state ``vector`` had seen the operation with this id."""
    match = _SYNCLINE_ID.fullmatch(op_id)
    if match is None:
        return False
    return vector.get(int(match[1], 16), 0) > int(match[2], 16)


def max_vector(a: Mapping[int, int], b: Mapping[int, int]) -> dict[int, int]:
    out = dict(a)
    for client, clock in b.items():
        out[client] = max(out.get(client, 0), clock)
    return out


def dominates(a: Mapping[int, int], b: Mapping[int, int]) -> bool:
    """``a`` has seen everything ``b`` has."""
    return all(a.get(client, 0) >= clock for client, clock in b.items())


def vector_json(vector: Mapping[int, int]) -> dict[str, int]:
    return {f"{client:x}": clock for client, clock in sorted(vector.items()) if clock > 0}


def absorb(contributions: Iterable[Contribution], absorbed: Iterable[Mapping[str, Absorbed]]) -> dict[str, Absorbed]:
    """What a set replacing these contributions and earlier absorptions records, per guest."""
    out: dict[str, Absorbed] = {}
    for contribution in contributions:
        ids = frozenset(e.id for e in contribution.entries if e.kind != "merged")
        merged = frozenset(e.id for e in contribution.entries if e.kind == "merged")
        part = Absorbed(dict(contribution.vector), ids, merged)
        out[contribution.guest] = out[contribution.guest].union(part) if contribution.guest in out else part
    for mapping in absorbed:
        for guest, part in mapping.items():
            out[guest] = out[guest].union(part) if guest in out else part
    return out


def live_entries(contributions: Sequence[Contribution], absorbed: Absorbed | None) -> dict[tuple[bool, str], Entry]:
    """The entries of one guest's contributions on one line that count, by identity."""
    union: dict[tuple[bool, str], Entry] = {}
    for contribution in contributions:
        for entry in contribution.entries:
            known = union.get(entry.identity)
            if known is None or _entry_order(entry) > _entry_order(known):
                union[entry.identity] = entry
    carried = [c.identities() for c in contributions]
    live = {}
    for identity, entry in union.items():
        if absorbed is not None and absorbed.covers(entry):
            continue
        if entry.kind != "merged" and any(
            identity not in ids and covered(entry.id, c.vector) for c, ids in zip(contributions, carried, strict=True)
        ):
            continue  # replaced on the guest before that other merge
        live[identity] = entry
    return live


def guest_quantity(contributions: Sequence[Contribution], absorbed: Absorbed | None) -> int:
    """One guest's part of a line: the cart rule over the union of its live entries."""
    live = live_entries(contributions, absorbed).values()
    return max((e.n for e in live if e.kind == "set"), default=0) + sum(e.n for e in live if e.kind != "set")


def _entry_order(entry: Entry) -> tuple[int, str]:
    # Two copies of one id differ only if a foreign writer forged one: the larger n counts.
    return (entry.n, entry.kind)


# -- parsing what a peer stored ----------------------------------------------------


def parse_entries(raw: object) -> tuple[Entry, ...]:
    if not isinstance(raw, (list, tuple)) or len(raw) > MAX_ENTRIES:
        raise ValidationError("o", f"must be a list of at most {MAX_ENTRIES} entries")
    entries = []
    for item in raw:
        if not isinstance(item, (list, tuple)) or len(item) not in (2, 3):
            raise ValidationError("o", "each entry must be [id, n] or [id, n, kind]")
        kind = item[2] if len(item) == 3 else "add"
        if kind == "add":
            n = read_int(item[1], "o", 1, MAX_QUANTITY)
        elif kind == "set":
            n = read_int(item[1], "o", 0, MAX_QUANTITY)
        elif kind == "merged":
            n = read_int(item[1], "o", 1, MAX_SAFE_INTEGER)
        else:
            raise ValidationError("o", f"unknown entry kind {kind!r}")
        entries.append(Entry(kind, check_id(item[0], "o"), n))
    return tuple(entries)


def parse_vector(raw: object, field_name: str = "v") -> dict[int, int]:
    entry = read_mapping(raw, field_name)
    if len(entry) > MAX_ENTRIES:
        raise ValidationError(field_name, f"must have at most {MAX_ENTRIES} clients")
    vector = {}
    for client, clock in entry.items():
        if not isinstance(client, str) or re.fullmatch(r"[0-9a-f]{1,14}", client) is None:
            raise ValidationError(field_name, "keys must be client ids in lowercase hex")
        vector[int(client, 16)] = read_int(clock, field_name, 0, MAX_SAFE_INTEGER)
    return vector


def parse_absorbed(raw: object) -> dict[str, Absorbed]:
    entry = read_mapping(raw, "ag")
    if len(entry) > MAX_GUESTS:
        raise ValidationError("ag", f"must name at most {MAX_GUESTS} guest carts")
    out = {}
    for guest, value in entry.items():
        part = read_mapping(value, "ag")
        ids = part.get("o", [])
        merged = part.get("m", [])
        if not isinstance(ids, list) or not isinstance(merged, list) or len(ids) + len(merged) > MAX_ENTRIES:
            raise ValidationError("ag", f"o and m must be lists of at most {MAX_ENTRIES} ids in all")
        out[check_id(guest, "ag")] = Absorbed(
            parse_vector(part.get("v", {}), "ag"),
            frozenset(check_id(i, "ag") for i in ids),
            frozenset(check_id(i, "ag") for i in merged),
        )
    return out


def contribution_json(contribution: Contribution) -> dict[str, Any]:
    return {
        "g": contribution.guest,
        "o": [entry.to_json() for entry in contribution.entries],
        "v": vector_json(contribution.vector),
    }


def absorbed_json(absorbed: Mapping[str, Absorbed]) -> dict[str, Any]:
    return {guest: absorbed[guest].to_json() for guest in sorted(absorbed)}


def detail(value: object) -> str:
    """A deterministic text of a parsed value, to order copies of one op id alike in every language."""
    return canonical_json(value)
