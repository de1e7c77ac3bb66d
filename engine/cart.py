"""Carts: lines keyed by product and attributes, with counter quantities.

Layout of a cart document (see docs/semantics.md for the full contract):

* ``lines`` (Map): line key -> ``{"product": str, "attributes": object}``,
  written once per line. The key is :func:`line_key` of that content.
* ``ops`` (Array): an append-only log of quantity operations, each
  ``{"id", "l", "k", "n"}`` plus ``"m"`` on merge contributions and ``"a"`` on sets.
* ``cart`` (Map): ``status`` ("open" or "merged"), ``merged_into``, ``merged_at``.

A line's quantity is ``max(n of its sets) + sum(n of its adds)`` over the
operations present. Set-quantity, remove and clear delete the operations the
replica observed on that line (Yjs deletions, which are themselves CRDT edits),
so a concurrent add nobody deleted survives them: add wins. Deleting what a
set replaces also keeps long-lived carts small.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pycrdt import Array, Doc, Map

from .canonical import canonical_json
from .errors import AlreadyMerged, CartClosed, UnknownLine, ValidationError
from .schema import ChangeCounter, Clock, SchemaIssue, array_entries, is_shared_type, misplaced_entries, wall_clock
from .sync import own_clock
from .validation import (
    MAX_QUANTITY,
    MAX_SAFE_INTEGER,
    check_attributes,
    check_id,
    check_quantity,
    read_int,
    read_mapping,
)

OPS = "ops"
LINES = "lines"
META = "cart"

MAX_ABSORBED = 1024
"""Most merge keys one set operation may record."""

ADD: Literal["add"] = "add"
SET: Literal["set"] = "set"


def line_key(product_id: str, attributes: Mapping[str, Any] | None = None) -> str:
    """The identity of a line: same product and attributes, in any key order, same key.

    ``sha256(canonical_json([product_id, attributes]))`` in hex, first 32 digits.
    """
    product_id = check_id(product_id, "product_id")
    attrs = check_attributes({} if attributes is None else attributes)
    digest = hashlib.sha256(canonical_json([product_id, attrs]).encode()).hexdigest()
    return digest[:32]


@dataclass(frozen=True)
class CartLine:
    key: str
    product_id: str
    attributes: Mapping[str, Any]
    quantity: int


@dataclass(frozen=True)
class CartStatus:
    state: Literal["open", "merged"] = "open"
    merged_into: str | None = None
    merged_at: int | None = None


@dataclass(frozen=True)
class CartView:
    """Everything a reader derives from a cart's state, deterministically."""

    lines: tuple[CartLine, ...]
    status: CartStatus
    issues: tuple[SchemaIssue, ...] = ()

    @property
    def total_quantity(self) -> int:
        return sum(line.quantity for line in self.lines)

    def line(self, key: str) -> CartLine | None:
        return next((line for line in self.lines if line.key == key), None)


@dataclass(frozen=True)
class MergeResult:
    """What a guest-to-user merge contributed; ``replayed`` when it had happened before."""

    source: str
    target: str
    lines: tuple[CartLine, ...]
    replayed: bool


@dataclass(frozen=True)
class _Op:
    index: int
    id: str
    line: str
    kind: str
    n: int
    merge_key: str | None = None
    absorbed: frozenset[str] = frozenset()


@dataclass
class _Parsed:
    ops_by_line: dict[str, list[_Op]] = field(default_factory=dict)
    """The operations that count, per line."""
    duplicates_by_line: dict[str, list[_Op]] = field(default_factory=dict)
    """Second copies of an op id: not counted, but replaced along with the first."""
    issues: list[SchemaIssue] = field(default_factory=list)

    def observed(self, key: str) -> list[_Op]:
        return self.ops_by_line.get(key, []) + self.duplicates_by_line.get(key, [])

    def all_observed(self) -> dict[str, list[_Op]]:
        return {key: self.observed(key) for key in self.ops_by_line.keys() | self.duplicates_by_line.keys()}


class Cart:
    """A typed view of one cart document; every edit is one Yjs transaction."""

    def __init__(self, doc: Doc, cart_id: str, *, clock: Clock = wall_clock) -> None:
        self.doc = doc
        self.cart_id = check_id(cart_id, "cart_id")
        self._clock = clock
        self._ops = doc.get(OPS, type=Array)
        self._lines = doc.get(LINES, type=Map)
        self._meta = doc.get(META, type=Map)
        self._changes = ChangeCounter(doc)
        self._parsed: tuple[int, _Parsed] | None = None

    @classmethod
    def new(cls, cart_id: str, *, client_id: int | None = None, clock: Clock = wall_clock) -> Cart:
        """A cart on a fresh document (``client_id`` fixes the Yjs client id, for tests)."""
        return cls(Doc(client_id=client_id) if client_id is not None else Doc(), cart_id, clock=clock)

    # -- edits -------------------------------------------------------------------

    def add_item(
        self, product_id: str, quantity: int = 1, attributes: Mapping[str, Any] | None = None
    ) -> str:
        """Add ``quantity`` of a product with these attributes; return the line key."""
        quantity = check_quantity(quantity, allow_zero=False)
        attrs = check_attributes({} if attributes is None else attributes)
        key = line_key(product_id, attrs)
        self._ensure_open()
        with self.doc.transaction():
            if key not in self._lines:
                self._lines[key] = {"product": product_id, "attributes": attrs}
            self._ops.append({"id": self._next_id(), "l": key, "k": ADD, "n": quantity})
        return key

    def set_quantity(self, key: str, quantity: int) -> None:
        """Make the line show ``quantity``, replacing every operation this replica observed.

        A concurrent add that this replica had not seen still counts on top.
        """
        key = check_id(key, "line")
        quantity = check_quantity(quantity, allow_zero=True)
        self._ensure_open()
        parsed = self._parse()
        if self._line_meta(key) is None:
            raise UnknownLine(key)
        with self.doc.transaction():
            self._replace_lines({key: parsed.observed(key)}, quantity)

    def remove_line(self, key: str) -> None:
        """Remove a line: its quantity becomes 0 unless a concurrent add arrives."""
        self.set_quantity(key, 0)

    def clear(self) -> None:
        """Remove every line this replica has observed."""
        self._ensure_open()
        parsed = self._parse()
        with self.doc.transaction():
            self._replace_lines(parsed.all_observed(), 0)

    def merge_into(self, target: Cart) -> MergeResult:
        """Merge this (guest) cart into ``target``: matching lines sum; this cart closes.

        Idempotent: replaying the merge, on this replica or any other, changes
        nothing, because every contribution is keyed by this cart's id and counts
        once (its largest quantity). A replay does carry over what an offline
        device added to the guest cart after the first merge.
        """
        if target.cart_id == self.cart_id:
            raise ValidationError("target", "a cart cannot be merged into itself")
        status = self.status()
        if status.state == "merged" and status.merged_into != target.cart_id:
            raise AlreadyMerged(status.merged_into or "", target.cart_id)
        source_lines = self.view().lines
        if status.state == "merged":
            if target.status().state == "open":
                target._absorb(self.cart_id, source_lines)
            return MergeResult(self.cart_id, target.cart_id, source_lines, replayed=True)
        target._ensure_open()
        target._absorb(self.cart_id, source_lines)
        with self.doc.transaction():
            self._meta["status"] = "merged"
            self._meta["merged_into"] = target.cart_id
            self._meta["merged_at"] = self._clock()
        return MergeResult(self.cart_id, target.cart_id, source_lines, replayed=False)

    # -- reads -------------------------------------------------------------------

    def view(self) -> CartView:
        parsed = self._parse()
        issues = list(parsed.issues)
        issues += misplaced_entries(self.doc, LINES, Map) + misplaced_entries(self.doc, META, Map)
        metas = {}
        for key in sorted(self._lines.keys()):
            meta = self._line_meta(key, issues)
            if meta is not None:
                metas[key] = meta
        lines = []
        for key in sorted(parsed.ops_by_line):
            if key not in metas:
                issues.append(SchemaIssue(f"{OPS}[line={key}]", "operations for a line with no valid metadata"))
                continue
            quantity = _fold(parsed.ops_by_line[key])
            if quantity > 0:
                lines.append(CartLine(key, metas[key][0], metas[key][1], quantity))
        return CartView(tuple(lines), self._status(issues), tuple(issues))

    def lines(self) -> tuple[CartLine, ...]:
        return self.view().lines

    def quantity(self, key: str) -> int:
        line = self.view().line(key)
        return 0 if line is None else line.quantity

    def status(self) -> CartStatus:
        return self._status([])

    def _status(self, issues: list[SchemaIssue]) -> CartStatus:
        if "status" not in self._meta:
            return CartStatus()
        state = self._meta["status"]
        if state == "open":
            return CartStatus()
        if state != "merged":
            issues.append(SchemaIssue(f"{META}.status", f"must be 'open' or 'merged', not {_shown(state)}"))
            return CartStatus()
        into = self._meta.get("merged_into")
        try:
            into = check_id(into, "merged_into")
        except ValidationError as exc:
            issues.append(SchemaIssue(f"{META}.merged_into", str(exc)))
            into = None
        try:
            at: int | None = read_int(self._meta.get("merged_at"), "merged_at", 0, MAX_SAFE_INTEGER)
        except ValidationError as exc:
            issues.append(SchemaIssue(f"{META}.merged_at", str(exc)))
            at = None
        return CartStatus("merged", into, at)

    # -- internals ---------------------------------------------------------------

    def _ensure_open(self) -> None:
        status = self.status()
        if status.state == "merged":
            raise CartClosed(status.merged_into or "")

    def _next_id(self) -> str:
        # Unique per replica: the Yjs clock only grows, and every op consumes one tick.
        return f"{self.doc.client_id:x}.{own_clock(self.doc):x}"

    def _replace_lines(self, observed: Mapping[str, list[_Op]], quantity: int) -> None:
        """Delete the observed ops of each line and append one set op per line.

        All deletions go first, in one pass, because each shifts later indices.
        """
        _delete_indices(self._ops, [op.index for ops in observed.values() for op in ops])
        for key, ops in observed.items():
            absorbed: set[str] = set()
            for op in ops:
                absorbed |= op.absorbed
                if op.merge_key is not None:
                    absorbed.add(op.merge_key)
            if quantity > 0 or absorbed:
                entry: dict[str, Any] = {"id": self._next_id(), "l": key, "k": SET, "n": quantity}
                if absorbed:
                    entry["a"] = sorted(absorbed)
                self._ops.append(entry)

    def _absorb(self, source_id: str, lines: tuple[CartLine, ...]) -> None:
        parsed = self._parse()
        with self.doc.transaction():
            for line in lines:
                seen = parsed.observed(line.key)
                if any(source_id in op.absorbed for op in seen) or any(
                    op.merge_key == source_id and op.n >= line.quantity for op in seen
                ):
                    continue  # already contributed in full (or replaced by a later set)
                if line.key not in self._lines:
                    self._lines[line.key] = {"product": line.product_id, "attributes": dict(line.attributes)}
                self._ops.append(
                    {"id": self._next_id(), "l": line.key, "k": ADD, "n": line.quantity, "m": source_id}
                )

    def _line_meta(
        self, key: str, issues: list[SchemaIssue] | None = None
    ) -> tuple[str, Mapping[str, Any]] | None:
        if key not in self._lines:
            return None
        raw = self._lines[key]
        try:
            if is_shared_type(raw):
                raise ValidationError("line", f"a nested {type(raw).__name__} where plain JSON belongs")
            entry = read_mapping(raw, "line")
            product = check_id(entry.get("product"), "product")
            attrs = check_attributes(entry.get("attributes", {}))
            if line_key(product, attrs) != key:
                raise ValidationError("key", "does not match the line's product and attributes")
        except ValidationError as exc:
            if issues is not None:
                issues.append(SchemaIssue(f"{LINES}[{key}]", str(exc)))
            return None
        return product, attrs

    def _parse(self) -> _Parsed:
        """The ops array, parsed; cached until the next transaction on the document."""
        if self._parsed is not None and self._parsed[0] == self._changes.count:
            return self._parsed[1]
        parsed = _Parsed()
        parsed.issues += misplaced_entries(self.doc, OPS, Array)
        seen: dict[tuple[str, str], _Op] = {}
        for index, raw in enumerate(array_entries(self._ops)):
            try:
                op = _parse_op(index, raw)
            except ValidationError as exc:
                parsed.issues.append(SchemaIssue(f"{OPS}[{index}]", str(exc)))
                continue
            previous = seen.get((op.line, op.id))
            if previous is not None:
                # The same op id twice (a foreign writer's replay): count it once.
                parsed.issues.append(SchemaIssue(f"{OPS}[{index}]", f"duplicate op id {op.id!r}"))
                if _op_order(op) >= _op_order(previous):
                    parsed.duplicates_by_line.setdefault(op.line, []).append(op)
                    continue
                parsed.ops_by_line[op.line].remove(previous)
                parsed.duplicates_by_line.setdefault(op.line, []).append(previous)
            seen[(op.line, op.id)] = op
            parsed.ops_by_line.setdefault(op.line, []).append(op)
        self._parsed = (self._changes.count, parsed)
        return parsed


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _op_order(op: _Op) -> tuple[Any, ...]:
    return (op.kind, op.n, op.merge_key or "", sorted(op.absorbed))


def _parse_op(index: int, raw: object) -> _Op:
    entry = read_mapping(raw, "op")
    op_id = check_id(entry.get("id"), "id")
    line = check_id(entry.get("l"), "l")
    kind = entry.get("k")
    if kind == ADD:
        n = read_int(entry.get("n"), "n", 1, MAX_QUANTITY)
    elif kind == SET:
        n = read_int(entry.get("n"), "n", 0, MAX_QUANTITY)
    else:
        raise ValidationError("k", f"unknown op kind {kind!r}")
    merge_key = entry.get("m")
    if merge_key is not None:
        if kind != ADD:
            raise ValidationError("m", "only add operations carry a merge key")
        merge_key = check_id(merge_key, "m")
    absorbed: frozenset[str] = frozenset()
    if "a" in entry:
        if kind != SET or not isinstance(entry["a"], list) or len(entry["a"]) > MAX_ABSORBED:
            raise ValidationError("a", f"must be a list of at most {MAX_ABSORBED} merge keys on a set")
        absorbed = frozenset(check_id(item, "a") for item in entry["a"])
    return _Op(index, op_id, line, kind, n, merge_key, absorbed)


def _fold(ops: list[_Op]) -> int:
    """The quantity a line shows, from the operations present on it."""
    absorbed: set[str] = set()
    for op in ops:
        absorbed |= op.absorbed
    base = max((op.n for op in ops if op.kind == SET), default=0)
    added = sum(op.n for op in ops if op.kind == ADD and op.merge_key is None)
    merged: dict[str, int] = {}
    for op in ops:
        if op.merge_key is not None and op.merge_key not in absorbed:
            merged[op.merge_key] = max(merged.get(op.merge_key, 0), op.n)
    return base + added + sum(merged.values())


def _delete_indices(array: Array, indices: list[int]) -> None:
    """Delete items at ``indices``, last first, one call per contiguous run."""
    runs: list[tuple[int, int]] = []
    for index in sorted(indices, reverse=True):
        if runs and runs[-1][0] == index + 1:
            runs[-1] = (index, runs[-1][1])
        else:
            runs.append((index, index + 1))
    for start, stop in runs:
        del array[start:stop]


PriceOf = Callable[[str, Mapping[str, Any]], int | None]
"""A server-side price source: (product_id, attributes) -> unit price in minor units, or None."""


@dataclass(frozen=True)
class PricedLine:
    line: CartLine
    unit_price: int | None
    line_total: int | None


def price_lines(view: CartView, price_of: PriceOf) -> tuple[tuple[PricedLine, ...], int | None]:
    """Price every line with a trusted source; the total is None if any line has no price."""
    priced = []
    total: int | None = 0
    for line in view.lines:
        unit = price_of(line.product_id, line.attributes)
        line_total = None if unit is None else unit * line.quantity
        priced.append(PricedLine(line, unit, line_total))
        total = None if total is None or line_total is None else total + line_total
    return tuple(priced), total
