"""Orders: what a checkout sold, and how far the order has gone since.

Layout of an order document ``{tenant}/order/{id}`` (see docs/semantics.md):

* ``order`` (Map): ``placed`` -> one JSON object written by the checkout:
  ``{"cart", "location", "currency", "lines", "total", "at", "by"}``, each line
  ``{"key", "product", "attributes", "quantity", "unit_price", "line_total"}``.
  It is one value, so two checkouts racing on two relay nodes leave one whole
  order (Yjs keeps one of two concurrent writes of a key), never a mix of both.
* ``trail`` (Array): append-only transitions ``{"id", "k", "to", "at", "by"}``
  and an optional ``"note"``; ``k`` is ``"stage"`` or ``"payment"``.

Stage and payment status each only move forward through a rank order, so
replicas that advance an order offline and concurrently agree on the result by
taking the furthest rank any transition reached:

* stage: placed < confirmed < preparing < ready < cancelled < completed.
  Any forward move is allowed (a till may go straight from placed to completed);
  cancelling is allowed until the order completes, and a cancelled order moves
  no further. A completion concurrent with a cancellation wins: the goods were
  handed over, which a refund, not a cancellation, undoes.
* payment: pending < failed < authorized < paid < refunded. ``failed`` only
  from pending; from failed a retry may authorize or pay; ``refunded`` only
  from paid. Concurrently, money that moved wins over a failure.

Every transition stays in the trail with its actor and time, including those a
concurrent one overtook; each trail entry reports the value it moved from, as
folded in document order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pycrdt import Array, Doc, Map

from .errors import OrderNotPlaced, TransitionRefused, ValidationError
from .schema import Clock, SchemaIssue, array_entries, change_counter, misplaced_entries, wall_clock
from .sync import own_clock
from .validation import (
    MAX_QUANTITY,
    MAX_SAFE_INTEGER,
    check_attributes,
    check_id,
    check_int,
    check_note,
    check_timestamp,
    read_int,
    read_mapping,
)

META = "order"
TRAIL = "trail"
PLACED = "placed"

STAGES: tuple[str, ...] = ("placed", "confirmed", "preparing", "ready", "cancelled", "completed")
"""Stages in rank order: the furthest one any transition reached is the order's stage."""

PAYMENTS: tuple[str, ...] = ("pending", "failed", "authorized", "paid", "refunded")
"""Payment statuses in rank order."""

Kind = Literal["stage", "payment"]
MAX_LINES = 500
MAX_MONEY = MAX_SAFE_INTEGER
"""Amounts are integers in the currency's minor unit (cents)."""


@dataclass(frozen=True)
class OrderLine:
    key: str
    product_id: str
    attributes: Mapping[str, Any]
    quantity: int
    unit_price: int
    line_total: int


@dataclass(frozen=True)
class Transition:
    """One entry of the trail: ``kind`` moved from ``previous`` to ``to`` (as folded in document order)."""

    id: str
    kind: Kind
    to: str
    previous: str
    at: int
    by: str
    note: str | None = None

    @property
    def effective(self) -> bool:
        """False when an earlier transition had already gone as far or further."""
        return self.to != self.previous and _rank(self.kind, self.to) > _rank(self.kind, self.previous)


@dataclass(frozen=True)
class OrderView:
    """Everything a reader derives from an order's state; equal on replicas with equal state."""

    order_id: str
    placed: bool
    cart: str | None
    location: str | None
    currency: str | None
    lines: tuple[OrderLine, ...]
    total: int
    placed_at: int | None
    placed_by: str | None
    stage: str
    payment: str
    trail: tuple[Transition, ...]
    issues: tuple[SchemaIssue, ...] = ()


class Order:
    """A typed view of one order document; every edit is one Yjs transaction."""

    def __init__(self, doc: Doc, order_id: str, *, clock: Clock = wall_clock) -> None:
        self.doc = doc
        self.order_id = check_id(order_id, "order_id")
        self._clock = clock
        self._meta = doc.get(META, type=Map)
        self._trail = doc.get(TRAIL, type=Array)
        self._changes = change_counter(doc)
        self._cached: tuple[int, OrderView] | None = None

    @classmethod
    def new(cls, order_id: str, *, client_id: int | None = None, clock: Clock = wall_clock) -> Order:
        """An order on a fresh document (``client_id`` fixes the Yjs client id, for tests)."""
        return cls(Doc(client_id=client_id) if client_id is not None else Doc(), order_id, clock=clock)

    # -- edits -------------------------------------------------------------------

    def place(
        self,
        *,
        cart: str,
        location: str,
        currency: str,
        lines: Sequence[OrderLine],
        by: str,
        at: int | None = None,
    ) -> bool:
        """Write what the checkout sold; False (nothing written) if the order was placed already."""
        content = {
            "cart": check_id(cart, "cart"),
            "location": check_id(location, "location"),
            "currency": _check_currency(currency),
            "lines": [_line_json(line, f"lines[{i}]") for i, line in enumerate(lines)],
            "by": check_id(by, "by"),
            "at": self._clock() if at is None else check_timestamp(at),
        }
        if not content["lines"]:
            raise ValidationError("lines", "an order needs at least one line")
        if len(content["lines"]) > MAX_LINES:
            raise ValidationError("lines", f"an order has at most {MAX_LINES} lines")
        content["total"] = check_int(sum(line["line_total"] for line in content["lines"]), "total", 0, MAX_MONEY)
        if self.view().placed:
            return False
        with self.doc.transaction():
            self._meta[PLACED] = content
        return True

    def advance(self, stage: str, *, by: str, note: str | None = None, at: int | None = None) -> bool:
        """Move the order to ``stage``; False if it is there already.

        Raises :class:`TransitionRefused` for a move backwards, out of a cancelled
        order, or a cancellation after completion.
        """
        return self._transition("stage", stage, by, note, at)

    def cancel(self, *, by: str, note: str | None = None, at: int | None = None) -> bool:
        """Cancel the order (refused once it completed)."""
        return self._transition("stage", "cancelled", by, note, at)

    def record_payment(self, status: str, *, by: str, note: str | None = None, at: int | None = None) -> bool:
        """Move the payment to ``status``; False if it is there already."""
        return self._transition("payment", status, by, note, at)

    # -- reads -------------------------------------------------------------------

    def view(self) -> OrderView:
        count = self._changes.count
        if self._cached is not None and self._cached[0] == count:
            return self._cached[1]
        view = self._read()
        self._cached = (count, view)
        return view

    def stage(self) -> str:
        return self.view().stage

    def payment(self) -> str:
        return self.view().payment

    def trail(self) -> tuple[Transition, ...]:
        return self.view().trail

    # -- internals ---------------------------------------------------------------

    def _transition(self, kind: Kind, to: str, by: str, note: str | None, at: int | None) -> bool:
        names = STAGES if kind == "stage" else PAYMENTS
        if to not in names:
            raise ValidationError(kind, f"must be one of {', '.join(names)}, not {to!r}")
        by = check_id(by, "by")
        entry: dict[str, Any] = {"k": kind, "to": to, "by": by, "at": self._clock() if at is None else check_timestamp(at)}
        if note is not None:
            entry["note"] = check_note(note)
        view = self.view()
        if not view.placed:
            raise OrderNotPlaced(self.order_id)
        current = view.stage if kind == "stage" else view.payment
        if to == current:
            return False
        refusal = refusal_of(kind, current, to)
        if refusal is not None:
            raise TransitionRefused(kind, current, to, refusal)
        with self.doc.transaction():
            entry["id"] = f"{self.doc.client_id:x}.{own_clock(self.doc):x}"
            self._trail.append(entry)
        return True

    def _read(self) -> OrderView:
        issues = misplaced_entries(self.doc, META, Map) + misplaced_entries(self.doc, TRAIL, Array)
        placed = self._placed(issues)
        stage, payment = STAGES[0], PAYMENTS[0]
        trail: list[Transition] = []
        for index, raw in enumerate(array_entries(self._trail)):
            try:
                transition = _parse_transition(raw, stage if _kind_of(raw) == "stage" else payment)
            except ValidationError as exc:
                issues.append(SchemaIssue(f"{TRAIL}[{index}]", str(exc)))
                continue
            trail.append(transition)
            if transition.effective:
                if transition.kind == "stage":
                    stage = transition.to
                else:
                    payment = transition.to
        if placed is None:
            return OrderView(self.order_id, False, None, None, None, (), 0, None, None, stage, payment,
                             tuple(trail), tuple(issues))
        return OrderView(self.order_id, True, placed["cart"], placed["location"], placed["currency"],
                         placed["lines"], placed["total"], placed["at"], placed["by"], stage, payment,
                         tuple(trail), tuple(issues))

    def _placed(self, issues: list[SchemaIssue]) -> dict[str, Any] | None:
        if PLACED not in self._meta:
            return None
        try:
            raw = read_mapping(self._meta[PLACED], PLACED)
            lines = raw.get("lines")
            if not isinstance(lines, list) or not lines or len(lines) > MAX_LINES:
                raise ValidationError("lines", f"must be a list of 1 to {MAX_LINES} lines")
            parsed = tuple(_parse_line(line, f"lines[{i}]") for i, line in enumerate(lines))
            total = read_int(raw.get("total"), "total", 0, MAX_MONEY)
            if total != sum(line.line_total for line in parsed):
                raise ValidationError("total", "must be the sum of the line totals")
            return {
                "cart": check_id(raw.get("cart"), "cart"),
                "location": check_id(raw.get("location"), "location"),
                "currency": _check_currency(raw.get("currency")),
                "lines": parsed,
                "total": total,
                "at": read_int(raw.get("at"), "at", 0, MAX_SAFE_INTEGER),
                "by": check_id(raw.get("by"), "by"),
            }
        except ValidationError as exc:
            issues.append(SchemaIssue(f"{META}.{PLACED}", str(exc)))
            return None


def refusal_of(kind: Kind, current: str, to: str) -> str | None:
    """Why moving ``kind`` from ``current`` to ``to`` is refused, or None if it is allowed."""
    if _rank(kind, to) < _rank(kind, current):
        return f"{kind} cannot go back from {current} to {to}"
    if kind == "stage":
        if current == "cancelled":
            return "a cancelled order moves no further"
        if current == "completed":
            return "a completed order moves no further"
    else:
        if to == "failed" and current != "pending":
            return "only a pending payment can fail"
        if to == "refunded" and current != "paid":
            return "only a paid order can be refunded"
        if current == "refunded":
            return "a refunded payment moves no further"
    return None


def line_total(quantity: int, unit_price: int) -> int:
    return quantity * unit_price


def _rank(kind: Kind, value: str) -> int:
    return (STAGES if kind == "stage" else PAYMENTS).index(value)


def _kind_of(raw: object) -> object:
    return raw.get("k") if isinstance(raw, Mapping) else None


def _check_currency(value: object) -> str:
    if not isinstance(value, str) or len(value) != 3 or not value.isascii() or not value.isupper():
        raise ValidationError("currency", "must be a three-letter ISO 4217 code such as EUR")
    return value


def _line_json(line: OrderLine, field: str) -> dict[str, Any]:
    quantity = check_int(line.quantity, f"{field}.quantity", 1, MAX_QUANTITY)
    unit_price = check_int(line.unit_price, f"{field}.unit_price", 0, MAX_MONEY)
    if line.line_total != line_total(quantity, unit_price):
        raise ValidationError(f"{field}.line_total", "must be quantity times unit_price")
    return {
        "key": check_id(line.key, f"{field}.key"),
        "product": check_id(line.product_id, f"{field}.product"),
        "attributes": check_attributes(dict(line.attributes), f"{field}.attributes"),
        "quantity": quantity,
        "unit_price": unit_price,
        "line_total": check_int(line.line_total, f"{field}.line_total", 0, MAX_MONEY),
    }


def _parse_line(raw: object, field: str) -> OrderLine:
    entry = read_mapping(raw, field)
    quantity = read_int(entry.get("quantity"), f"{field}.quantity", 1, MAX_QUANTITY)
    unit_price = read_int(entry.get("unit_price"), f"{field}.unit_price", 0, MAX_MONEY)
    total = read_int(entry.get("line_total"), f"{field}.line_total", 0, MAX_MONEY)
    if total != line_total(quantity, unit_price):
        raise ValidationError(f"{field}.line_total", "must be quantity times unit_price")
    return OrderLine(
        key=check_id(entry.get("key"), f"{field}.key"),
        product_id=check_id(entry.get("product"), f"{field}.product"),
        attributes=check_attributes(read_mapping(entry.get("attributes", {}), f"{field}.attributes"),
                                    f"{field}.attributes"),
        quantity=quantity,
        unit_price=unit_price,
        line_total=total,
    )


def _parse_transition(raw: object, previous: str) -> Transition:
    entry = read_mapping(raw, "transition")
    kind = entry.get("k")
    if kind not in ("stage", "payment"):
        raise ValidationError("k", "must be 'stage' or 'payment'")
    names = STAGES if kind == "stage" else PAYMENTS
    to = entry.get("to")
    if to not in names:
        raise ValidationError("to", f"must be one of {', '.join(names)}")
    note = entry.get("note")
    return Transition(
        id=check_id(entry.get("id"), "id"),
        kind=kind,
        to=str(to),
        previous=previous,
        at=read_int(entry.get("at"), "at", 0, MAX_SAFE_INTEGER),
        by=check_id(entry.get("by"), "by"),
        note=None if note is None else check_note(note),
    )
