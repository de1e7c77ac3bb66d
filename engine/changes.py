"""What one document change meant: the typed events a change feed reports, from two views.

Given a document's derived view before and after one stored update, :func:`cart_changes`,
:func:`order_changes` and :func:`stock_changes` say what changed for a reader, as
:class:`FeedChange` values (an event type and its fields). They compare views, never
bytes, so the same change gives the same events whichever way it reached the store (a
WebSocket peer, a REST write, a batch). :class:`ChangeTracker` holds one document and its
last view and turns each update applied to it into the changes it made.

Events, in this order within one change:

* ``cart.changed``: the lines whose quantity changed (``previous`` and ``quantity``; a
  removed line has quantity 0), and ``status`` when the cart was merged or checked out.
* ``order.created``; ``order.stage_changed`` (``previous``, ``stage``), or
  ``order.cancelled`` when the new stage is ``cancelled``; ``order.payment_changed``
  (``previous``, ``payment``). Each move names who made it and when (``by``,
  ``moved_at``; a feed event's own ``at`` is the time the change was stored).
* ``stock.level_changed`` per sku whose level changed (``previous``, ``level``, and the
  ``refs`` of the adjustments newly counted, such as the orders of sales);
  ``stock.conflict_opened`` per conflict newly derived; ``stock.conflict_resolved`` per
  conflict newly resolved by a decision, or no longer derived (``cleared``, e.g. a restock
  brought a negative level back to zero).

A change with nothing of this to say (a duplicate delivery, a foreign key) gives no events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc

from .cart import Cart, CartStatus, CartView
from .conflicts import Conflict
from .names import KINDS
from .order import Order, OrderView
from .stock import LedgerView, StockLedger
from .sync import apply_update

CART_CHANGED = "cart.changed"
ORDER_CREATED = "order.created"
ORDER_STAGE_CHANGED = "order.stage_changed"
ORDER_PAYMENT_CHANGED = "order.payment_changed"
ORDER_CANCELLED = "order.cancelled"
STOCK_LEVEL_CHANGED = "stock.level_changed"
STOCK_CONFLICT_OPENED = "stock.conflict_opened"
STOCK_CONFLICT_RESOLVED = "stock.conflict_resolved"

EVENT_TYPES: tuple[str, ...] = (
    CART_CHANGED, ORDER_CREATED, ORDER_STAGE_CHANGED, ORDER_PAYMENT_CHANGED, ORDER_CANCELLED,
    STOCK_LEVEL_CHANGED, STOCK_CONFLICT_OPENED, STOCK_CONFLICT_RESOLVED,
)
"""Every typed event a change can give."""
FEED_EVENT_TYPES: tuple[str, ...] = tuple(dict.fromkeys((*EVENT_TYPES, *(f"{kind}.changed" for kind in KINDS))))
"""Every event a document change gives on the change feed (``{kind}.changed`` when nothing typed can be said)."""
FEED_TYPE_FILTERS: tuple[str, ...] = (*FEED_EVENT_TYPES, *(f"{kind}.*" for kind in KINDS))
"""What the change feed's ``type`` filter takes: an event type, or ``kind.*`` for every event of a kind."""
MAX_FEED_FILTERS = 100
"""The most values of one filter (``doc``, ``type``, ``order``) a change feed stream takes."""

View = CartView | OrderView | LedgerView


@dataclass(frozen=True)
class FeedChange:
    """One meaningful change: an event ``type`` (one of :data:`EVENT_TYPES`) and its fields."""

    type: str
    fields: Mapping[str, Any]


# -- carts -----------------------------------------------------------------------------


def _status_json(status: CartStatus) -> dict[str, Any]:
    body: dict[str, Any] = {"state": status.state}
    if status.state == "merged":
        body.update(merged_into=status.merged_into, merged_at=status.merged_at)
    elif status.state == "checked_out":
        body.update(order=status.order, checked_out_at=status.checked_out_at)
    return body


def cart_changes(before: CartView, after: CartView) -> tuple[FeedChange, ...]:
    """One ``cart.changed`` naming each line whose quantity changed and a status change, or nothing."""
    old = {line.key: line for line in before.lines}
    new = {line.key: line for line in after.lines}
    lines = []
    for key in sorted(old.keys() | new.keys()):
        was, now = old.get(key), new.get(key)
        previous = 0 if was is None else was.quantity
        quantity = 0 if now is None else now.quantity
        if previous != quantity:
            line = now or was
            assert line is not None
            lines.append({"key": key, "product": line.product_id, "attributes": dict(line.attributes),
                          "previous": previous, "quantity": quantity})
    fields: dict[str, Any] = {}
    if lines:
        fields["lines"] = lines
    if before.status != after.status:
        fields["status"] = {**_status_json(after.status), "previous": before.status.state}
    if not fields:
        return ()
    fields.setdefault("lines", [])
    return (FeedChange(CART_CHANGED, fields),)


# -- orders ----------------------------------------------------------------------------


def _move(view: OrderView, kind: str, to: str) -> dict[str, Any]:
    """``by``, ``moved_at`` (and ``note``) of the transition that took ``kind`` to ``to``."""
    for transition in reversed(view.trail):
        if transition.kind == kind and transition.to == to and transition.effective:
            body: dict[str, Any] = {"by": transition.by, "moved_at": transition.at}
            if transition.note is not None:
                body["note"] = transition.note
            return body
    return {}


def order_changes(before: OrderView, after: OrderView) -> tuple[FeedChange, ...]:
    """``order.created`` when the order was placed, then its stage move and its payment move."""
    changes = []
    if after.placed and not before.placed:
        changes.append(FeedChange(ORDER_CREATED, {
            "order": after.order_id, "cart": after.cart, "location": after.location,
            "currency": after.currency, "total": after.total,
            "lines": [{"key": line.key, "product": line.product_id, "quantity": line.quantity,
                       "unit_price": line.unit_price, "line_total": line.line_total} for line in after.lines],
            "placed_at": after.placed_at, "placed_by": after.placed_by,
            "stage": after.stage, "payment": after.payment,
        }))
    if after.stage != before.stage:
        kind = ORDER_CANCELLED if after.stage == "cancelled" else ORDER_STAGE_CHANGED
        changes.append(FeedChange(kind, {"order": after.order_id, "previous": before.stage, "stage": after.stage,
                                         **_move(after, "stage", after.stage)}))
    if after.payment != before.payment:
        changes.append(FeedChange(ORDER_PAYMENT_CHANGED, {
            "order": after.order_id, "previous": before.payment, "payment": after.payment,
            **_move(after, "payment", after.payment)}))
    return tuple(changes)


# -- stock -----------------------------------------------------------------------------


def _conflict_json(conflict: Conflict) -> dict[str, Any]:
    body: dict[str, Any] = {"conflict": conflict.id, "conflict_kind": conflict.kind, "sku": conflict.sku,
                            "level": conflict.level}
    if conflict.adjustments:
        body["adjustments"] = list(conflict.adjustments)
    if conflict.counts:
        body["counts"] = [{"id": c.id, "counted": c.counted, "actor": c.actor, "at": c.at} for c in conflict.counts]
    return body


def stock_changes(before: LedgerView, after: LedgerView, location: str) -> tuple[FeedChange, ...]:
    """Per sku a ``stock.level_changed``, then conflicts opened, then conflicts resolved or cleared."""
    changes = []
    known = {adj.id for adj in before.adjustments}
    refs: dict[str, set[str]] = {}
    for adj in after.adjustments:
        if adj.id not in known and adj.ref is not None:
            refs.setdefault(adj.sku, set()).add(adj.ref)
    for sku in sorted(before.levels.keys() | after.levels.keys()):
        previous, level = before.levels.get(sku, 0), after.levels.get(sku, 0)
        if previous != level:
            changes.append(FeedChange(STOCK_LEVEL_CHANGED, {
                "sku": sku, "location": location, "previous": previous, "level": level,
                "refs": sorted(refs.get(sku, ())),
            }))
    was_open = {c.id: c for c in before.conflicts}
    was_resolved = {c.id for c in before.resolved}
    now_open = {c.id: c for c in after.conflicts}
    now_resolved = {c.id: c for c in after.resolved}
    for conflict in (*after.conflicts, *after.resolved):
        if conflict.id not in was_open and conflict.id not in was_resolved:
            changes.append(FeedChange(STOCK_CONFLICT_OPENED, {"location": location, **_conflict_json(conflict)}))
    decisions = {r.conflict: r for r in after.resolutions}
    closed = [c for c in before.conflicts if c.id not in now_open]
    closed += [c for c in after.resolved if c.id not in was_open and c.id not in was_resolved]
    for conflict in sorted(closed, key=lambda c: (c.sku, c.kind, c.id)):
        decision = decisions.get(conflict.id)
        changes.append(FeedChange(STOCK_CONFLICT_RESOLVED, {
            "location": location, **_conflict_json(now_resolved.get(conflict.id, conflict)),
            "cleared": decision is None,
            "resolution": None if decision is None else {
                "id": decision.id, "strategy": decision.strategy, "actor": decision.actor, "at": decision.at},
        }))
    return tuple(changes)


# -- one document, update after update -------------------------------------------------


class ChangeTracker:
    """One document of ``kind`` (``cart``, ``order`` or ``stock``) and its last view.

    :meth:`apply` integrates one stored update and returns the changes it made;
    :meth:`load` integrates updates without reporting (to reach a starting point).
    """

    def __init__(self, kind: str, doc_id: str) -> None:
        self.kind = kind
        self.doc_id = doc_id
        self.doc: Doc[Any] = Doc()
        self._model: Cart | Order | StockLedger
        if kind == "cart":
            self._model = Cart(self.doc, doc_id)
        elif kind == "order":
            self._model = Order(self.doc, doc_id)
        elif kind == "stock":
            self._model = StockLedger(self.doc, doc_id)
        else:
            raise ValueError(f"no change tracking for documents of kind {kind!r}")
        self._view: View | None = None

    def load(self, update: bytes) -> None:
        """Integrate ``update`` without reporting what it changed (the view is derived once, later)."""
        apply_update(self.doc, update)
        self._view = None

    def apply(self, update: bytes) -> tuple[FeedChange, ...]:
        """Integrate ``update`` and return what it changed, compared with the view before it."""
        before = self._current()
        apply_update(self.doc, update)
        after = self._view = self._model.view()
        return diff(self.kind, self.doc_id, before, after)

    def _current(self) -> View:
        if self._view is None:
            self._view = self._model.view()
        return self._view

    def summary(self) -> dict[str, Any]:
        """The current state in short, as a reader would re-read it (for events that cannot say
        what changed, only what is now)."""
        view = self._current()
        if isinstance(view, CartView):
            return {"lines": [{"key": line.key, "product": line.product_id, "attributes": dict(line.attributes),
                               "quantity": line.quantity} for line in view.lines],
                    "status": _status_json(view.status)}
        if isinstance(view, OrderView):
            return {"placed": view.placed, "stage": view.stage, "payment": view.payment, "total": view.total}
        return {"levels": dict(view.levels), "conflicts": [c.id for c in view.conflicts]}


def diff(kind: str, doc_id: str, before: View, after: View) -> tuple[FeedChange, ...]:
    """The changes from ``before`` to ``after``, two views of one document of ``kind``."""
    if isinstance(before, CartView) and isinstance(after, CartView):
        return cart_changes(before, after)
    if isinstance(before, OrderView) and isinstance(after, OrderView):
        return order_changes(before, after)
    if isinstance(before, LedgerView) and isinstance(after, LedgerView):
        return stock_changes(before, after, doc_id)
    raise ValueError(f"views of different kinds for a {kind} document")
