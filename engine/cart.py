"""Carts: lines keyed by product and attributes, with counter quantities.

Layout of a cart document (see docs/semantics.md for the full contract):

* ``lines`` (Map): line key -> ``{"product": str, "attributes": object}``,
  written once per line. The key is :func:`line_key` of that content.
* ``ops`` (Array): an append-only log of quantity operations: adds and sets
  ``{"id", "l", "k", "n"}`` (plus ``"a"`` and ``"ag"`` on sets: what they absorbed
  of merges), and merge contributions ``{"id", "l", "k": "merge", "g", "o", "v"}``
  (:mod:`.contributions`). Older documents hold merge contributions as adds with
  ``"m"``, the guest's id; they keep their meaning (largest per guest counts).
* ``cart`` (Map): ``status`` ("open", "merged" or "checked_out"), then
  ``merged_into`` and ``merged_at``, or ``order`` and ``checked_out_at``.

A line's quantity is ``max(n of its sets) + sum(n of its adds)`` over the
operations present, plus each guest's operations counted once. Set-quantity, remove and clear delete the operations the
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
from .contributions import (
    MAX_ENTRIES,
    Absorbed,
    Contribution,
    Entry,
    absorb,
    absorbed_json,
    contribution_json,
    detail,
    guest_quantity,
    live_entries,
    parse_absorbed,
    parse_entries,
    parse_vector,
)
from .errors import AlreadyMerged, CartClosed, UnknownLine, ValidationError
from .schema import Clock, SchemaIssue, array_entries, change_counter, is_shared_type, misplaced_entries, wall_clock
from .sync import decode_state_vector, own_clock
from .validation import (
    MAX_QUANTITY,
    MAX_SAFE_INTEGER,
    check_attributes,
    check_id,
    check_quantity,
    check_timestamp,
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
MERGE: Literal["merge"] = "merge"

CartState = Literal["open", "merged", "checked_out"]


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
    """Open, merged into another cart (``merged_into``, ``merged_at``) or checked out (``order``, ``checked_out_at``)."""

    state: CartState = "open"
    merged_into: str | None = None
    merged_at: int | None = None
    order: str | None = None
    checked_out_at: int | None = None


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
    contribution: Contribution | None = None
    absorbed_guests: Mapping[str, Absorbed] = field(default_factory=dict)
    detail: str = ""


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
        self._changes = change_counter(doc)
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

        Every guest operation counts once in the target, whichever devices merged
        which parts of this cart's history: each merge carries the ids of the guest
        operations it saw (:mod:`.contributions`), and the target counts their union.
        So replaying the merge, here or on another replica, adds nothing, and a replay
        carries over what an offline device added to the guest cart after the first merge.
        """
        if target.cart_id == self.cart_id:
            raise ValidationError("target", "a cart cannot be merged into itself")
        status = self.status()
        if status.state == "checked_out":
            raise CartClosed(state="checked_out", target=status.order or "")
        if status.state == "merged" and status.merged_into != target.cart_id:
            raise AlreadyMerged(status.merged_into or "", target.cart_id)
        source_lines = self.view().lines
        contributions = self._contributions()
        if status.state == "merged":
            if target.status().state == "open":
                target._take(contributions)
            return MergeResult(self.cart_id, target.cart_id, source_lines, replayed=True)
        target._ensure_open()
        target._take(contributions)
        with self.doc.transaction():
            self._meta["status"] = "merged"
            self._meta["merged_into"] = target.cart_id
            self._meta["merged_at"] = self._clock()
        return MergeResult(self.cart_id, target.cart_id, source_lines, replayed=False)

    def check_out(self, order_id: str, *, at: int | None = None) -> CartStatus:
        """Close the cart as checked out into order ``order_id`` (its bare id) at ``at`` (epoch ms).

        Idempotent for the same order; a cart checked out into another order, or
        merged, raises :class:`CartClosed`. Edits and merges are refused afterwards.
        """
        order_id = check_id(order_id, "order_id")
        when = None if at is None else check_timestamp(at, "at")
        status = self.status()
        if status.state == "checked_out" and status.order == order_id:
            return status
        self._ensure_open()
        with self.doc.transaction():
            self._meta["status"] = "checked_out"
            self._meta["order"] = order_id
            self._meta["checked_out_at"] = self._clock() if when is None else when
        return self.status()

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
        if state == "merged":
            into = self._read_meta("merged_into", issues, lambda v, f: check_id(v, f))
            at = self._read_meta("merged_at", issues, lambda v, f: read_int(v, f, 0, MAX_SAFE_INTEGER))
            return CartStatus("merged", into, at)
        if state == "checked_out":
            order = self._read_meta("order", issues, lambda v, f: check_id(v, f))
            at = self._read_meta("checked_out_at", issues, lambda v, f: read_int(v, f, 0, MAX_SAFE_INTEGER))
            return CartStatus("checked_out", order=order, checked_out_at=at)
        issues.append(
            SchemaIssue(f"{META}.status", f"must be 'open', 'merged' or 'checked_out', not {_shown(state)}")
        )
        return CartStatus()

    def _read_meta(self, key: str, issues: list[SchemaIssue], read: Callable[[object, str], Any]) -> Any:
        try:
            return read(self._meta.get(key), key)
        except ValidationError as exc:
            issues.append(SchemaIssue(f"{META}.{key}", str(exc)))
            return None

    # -- internals ---------------------------------------------------------------

    def _ensure_open(self) -> None:
        status = self.status()
        if status.state == "merged":
            raise CartClosed(status.merged_into or "")
        if status.state == "checked_out":
            raise CartClosed(state="checked_out", target=status.order or "")

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
            guests = absorb(
                (op.contribution for op in ops if op.contribution is not None), (op.absorbed_guests for op in ops)
            )
            # Written even at 0 with nothing absorbed: it tells a later guest merge what it replaced.
            entry: dict[str, Any] = {"id": self._next_id(), "l": key, "k": SET, "n": quantity}
            if absorbed:
                entry["a"] = sorted(absorbed)
            if guests:
                entry["ag"] = absorbed_json(guests)
            self._ops.append(entry)

    def _contributions(self) -> list[tuple[str, tuple[str, Mapping[str, Any]], Contribution]]:
        """What merging this cart carries, per line: its operations present, and its state vector."""
        parsed = self._parse()
        vector = decode_state_vector(self.doc.get_state())
        if len(vector) > MAX_ENTRIES:
            raise ValidationError("source", f"a guest cart written by more than {MAX_ENTRIES} clients")
        out = []
        for key in sorted(self._lines.keys()):
            meta = self._line_meta(key)
            if meta is None:
                continue
            entries = _guest_entries(parsed.ops_by_line.get(key, []))
            if len(entries) > MAX_ENTRIES:
                raise ValidationError(
                    "source", f"line {key} has more than {MAX_ENTRIES} operations: set its quantity before merging"
                )
            out.append((key, meta, Contribution(self.cart_id, entries, vector)))
        return out

    def _take(self, contributions: list[tuple[str, tuple[str, Mapping[str, Any]], Contribution]]) -> None:
        """Write each contribution that tells this cart something it does not know yet."""
        parsed = self._parse()
        with self.doc.transaction():
            for key, (product, attributes), contribution in contributions:
                entry = _contribution_entry(parsed.observed(key), contribution)
                if entry is None:
                    continue
                if key not in self._lines:
                    self._lines[key] = {"product": product, "attributes": dict(attributes)}
                self._ops.append({"id": self._next_id(), "l": key, **entry})

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
    return (op.kind, op.n, op.merge_key or "", sorted(op.absorbed), op.detail)


def _parse_op(index: int, raw: object) -> _Op:
    entry = read_mapping(raw, "op")
    op_id = check_id(entry.get("id"), "id")
    line = check_id(entry.get("l"), "l")
    kind = entry.get("k")
    if kind == ADD:
        n = read_int(entry.get("n"), "n", 1, MAX_QUANTITY)
    elif kind == SET:
        n = read_int(entry.get("n"), "n", 0, MAX_QUANTITY)
    elif kind == MERGE:
        n = 0
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
    guests: dict[str, Absorbed] = {}
    if "ag" in entry:
        if kind != SET:
            raise ValidationError("ag", "only set operations absorb guest contributions")
        guests = parse_absorbed(entry["ag"])
    contribution = None
    shown = absorbed_json(guests) if guests else None
    if kind == MERGE:
        contribution = Contribution(
            check_id(entry.get("g"), "g"), parse_entries(entry.get("o")), parse_vector(entry.get("v"))
        )
        shown = contribution_json(contribution)
    return _Op(index, op_id, line, kind, n, merge_key, absorbed, contribution, guests,
               "" if shown is None else detail(shown))


def _parts(ops: list[_Op]) -> tuple[list[_Op], dict[str, int]]:
    """A line's own adds and sets, and what each guest merged into it contributes.

    A guest's part is the largest of its old-form contributions (``m``) or the union
    of its contributions' entries (:func:`.contributions.guest_quantity`), whichever is
    larger; a set that absorbed the guest's merge key in ``a`` replaced both.
    """
    absorbed: set[str] = set()
    for op in ops:
        absorbed |= op.absorbed
    guests = absorb((), (op.absorbed_guests for op in ops))
    own = [op for op in ops if op.kind != MERGE and op.merge_key is None]
    legacy: dict[str, int] = {}
    contributions: dict[str, list[Contribution]] = {}
    for op in ops:
        if op.merge_key is not None and op.merge_key not in absorbed:
            legacy[op.merge_key] = max(legacy.get(op.merge_key, 0), op.n)
        if op.contribution is not None and op.contribution.guest not in absorbed:
            contributions.setdefault(op.contribution.guest, []).append(op.contribution)
    parts = dict(legacy)
    for guest, found in contributions.items():
        parts[guest] = max(parts.get(guest, 0), guest_quantity(found, guests.get(guest)))
    return own, parts


def _fold(ops: list[_Op]) -> int:
    """The quantity a line shows, from the operations present on it."""
    own, parts = _parts(ops)
    base = max((op.n for op in own if op.kind == SET), default=0)
    return base + sum(op.n for op in own if op.kind == ADD) + sum(parts.values())


def _guest_entries(ops: list[_Op]) -> tuple[Entry, ...]:
    """What a merge of this line carries: its own operations, and each earlier guest's part as one entry."""
    own, parts = _parts(ops)
    entries = [Entry("set" if op.kind == SET else "add", op.id, op.n) for op in own]
    entries += [Entry("merged", guest, n) for guest, n in sorted(parts.items()) if n > 0]
    return tuple(entries)


def _contribution_entry(seen: list[_Op], contribution: Contribution) -> dict[str, Any] | None:
    """The op that brings ``contribution`` into a line holding ``seen``, or None if it adds nothing."""
    guest = contribution.guest
    if any(guest in op.absorbed for op in seen):
        return None  # an old-form set replaced this guest's contributions
    legacy = [op for op in seen if op.merge_key == guest]
    if legacy:
        # A line already holding this guest's old-form contribution grows the old way.
        quantity = guest_quantity([contribution], None)
        if quantity == 0 or any(op.n >= quantity for op in legacy):
            return None
        return {"k": ADD, "n": min(quantity, MAX_QUANTITY), "m": guest}
    present = [op.contribution for op in seen if op.contribution is not None and op.contribution.guest == guest]
    absorbed = absorb((), (op.absorbed_guests for op in seen)).get(guest)
    known = {entry.identity for c in present for entry in c.entries}
    if all(entry.identity in known or (absorbed is not None and absorbed.covers(entry)) for entry in contribution.entries):
        if live_entries(present, absorbed) == live_entries([*present, contribution], absorbed):
            return None  # every operation it carries is here already, and it replaces none of them
    return {"k": MERGE, **contribution_json(contribution)}


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
