"""Cross-language conformance vectors: operations in, views, line keys and errors out.

``tests/vectors/*.json`` hold cases that both the engine (``tests/engine/test_vectors.py``)
and the JavaScript client (``adapters/js/test/vectors.test.ts``) run and assert against.
A case names its replicas (document kind, model id, Yjs client id) and lists steps; each
step that returns something carries the expected outcome under ``expect``, and the case
ends with every replica's view under ``expect``.

This module is the engine's runner. Run as a script it fills in the expectations once,
from the engine, into the committed files:

    python -m harness.vectors            # rewrite tests/vectors/*.json with the engine's outcomes

The files are then reviewed and committed; tests never regenerate them.

Step ops (``replica`` names the replica acting):

* cart: ``add`` (product, quantity, attributes?), ``set`` / ``remove`` (``key`` or ``line``:
  {product, attributes}; set takes quantity), ``clear``, ``merge`` (into: another replica),
  ``checkout`` (order, at?);
* stock: ``record`` (id, sku, delta, reason, actor, at?, ref?), ``count`` (sku, counted, actor,
  id?, at?, ref?), ``resolve`` (``conflict`` or ``conflict_of``: a sku, meaning its open conflict,
  else its resolved one, else the unknown ``none:{sku}``, of kind ``conflict_kind`` if given;
  strategy, actor, at?, note?, level?, resolution_id?);
* order: ``place`` (cart, location, currency, lines: [{key, product, attributes?, quantity,
  unit_price, line_total}], by, at?), ``advance`` (stage, by, note?, at?), ``cancel`` (by, note?,
  at?), ``pay`` (status, by, note?, at?); each returns ``{"written": bool}`` or the error;
* all: ``sync`` (from, to: one-way delivery of what ``to`` lacks), ``raw`` (root, value, and
  ``key`` for a map root: a foreign peer's write, bypassing validation), ``view``.

Canonical cases are ``{"value", "canonical"}`` or ``{"product", "attributes", "line_key"}``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pycrdt import Array, Doc, Map

from syncline.engine import (
    AlreadyMerged,
    CartClosed,
    DuplicateAdjustment,
    DuplicateCount,
    DuplicateResolution,
    EngineError,
    OrderNotPlaced,
    TransitionRefused,
    UnknownConflict,
    UnknownLine,
    ValidationError,
    apply_update,
    encode_diff,
    line_key,
    state_vector,
)
from syncline.engine.canonical import canonical_json
from syncline.engine.cart import Cart, CartView
from syncline.engine.order import Order, OrderLine, OrderView
from syncline.engine.stock import LedgerView, StockLedger

VECTORS = Path(__file__).resolve().parents[1] / "tests" / "vectors"
"""The committed vector files."""

DEFAULT_CLOCK = 1_700_000_000_000

_ERROR_FIELDS: dict[type[EngineError], tuple[str, ...]] = {
    ValidationError: ("field",),
    UnknownLine: ("line_key",),
    CartClosed: ("merged_into", "state", "target"),
    AlreadyMerged: ("merged_into", "requested"),
    DuplicateAdjustment: ("adjustment_id",),
    DuplicateCount: ("count_id",),
    UnknownConflict: ("conflict_id",),
    DuplicateResolution: ("resolution_id",),
    OrderNotPlaced: ("order_id",),
    TransitionRefused: ("kind", "current", "requested", "reason"),
}


def render_error(exc: EngineError) -> dict[str, Any]:
    """An error as vectors state it: its class name and its data (snake_case, as in engine/errors.py)."""
    body: dict[str, Any] = {"type": type(exc).__name__}
    for name in _ERROR_FIELDS[type(exc)]:
        body[name] = getattr(exc, name)
    return {"error": body}


def render_cart(view: CartView) -> dict[str, Any]:
    return {
        "lines": [
            {"key": line.key, "product": line.product_id, "attributes": dict(line.attributes), "quantity": line.quantity}
            for line in view.lines
        ],
        "status": {"state": view.status.state, "merged_into": view.status.merged_into,
                   "merged_at": view.status.merged_at, "order": view.status.order,
                   "checked_out_at": view.status.checked_out_at},
        "total_quantity": view.total_quantity,
        "issues": [issue.path for issue in view.issues],
    }


def render_ledger(view: LedgerView) -> dict[str, Any]:
    def conflict(c: Any) -> dict[str, Any]:
        return {
            "id": c.id, "kind": c.kind, "sku": c.sku, "level": c.level, "adjustments": list(c.adjustments),
            "counts": [count.to_json() for count in c.counts],
        }

    return {
        "adjustments": [a.to_json() for a in view.adjustments],
        "counts": [c.to_json() for c in view.counts],
        "resolutions": [r.to_json() for r in view.resolutions],
        "levels": dict(view.levels),
        "conflicts": [conflict(c) for c in view.conflicts],
        "resolved": [conflict(c) for c in view.resolved],
        "issues": [issue.path for issue in view.issues],
    }


# -- orders ---------------------------------------------------------------------------


def render_order(view: OrderView) -> dict[str, Any]:
    return {
        "order_id": view.order_id,
        "placed": view.placed,
        "cart": view.cart,
        "location": view.location,
        "currency": view.currency,
        "lines": [
            {"key": line.key, "product": line.product_id, "attributes": dict(line.attributes),
             "quantity": line.quantity, "unit_price": line.unit_price, "line_total": line.line_total}
            for line in view.lines
        ],
        "total": view.total,
        "placed_at": view.placed_at,
        "placed_by": view.placed_by,
        "stage": view.stage,
        "payment": view.payment,
        "trail": [
            {"id": t.id, "kind": t.kind, "to": t.to, "previous": t.previous, "at": t.at, "by": t.by, "note": t.note,
             "effective": t.effective}
            for t in view.trail
        ],
        "issues": [issue.path for issue in view.issues],
    }


def _edit_order(order: Order, step: Mapping[str, Any]) -> dict[str, Any]:
    op = step["op"]
    move = {name: step[name] for name in ("note", "at") if name in step}
    if op == "place":
        lines = [
            OrderLine(line["key"], line["product"], line.get("attributes", {}), line["quantity"], line["unit_price"],
                      line["line_total"])
            for line in step["lines"]
        ]
        at = {"at": step["at"]} if "at" in step else {}
        written = order.place(cart=step["cart"], location=step["location"], currency=step["currency"], lines=lines,
                              by=step["by"], **at)
    elif op == "advance":
        written = order.advance(step["stage"], by=step["by"], **move)
    elif op == "cancel":
        written = order.cancel(by=step["by"], **move)
    elif op == "pay":
        written = order.record_payment(step["status"], by=step["by"], **move)
    else:
        raise ValueError(f"unknown vector op {op!r} for Order")
    return {"written": written}


# -- every kind ------------------------------------------------------------------------


def render(model: Cart | StockLedger | Order) -> dict[str, Any]:
    if isinstance(model, Order):
        return render_order(model.view())
    return render_cart(model.view()) if isinstance(model, Cart) else render_ledger(model.view())


class CaseRun:
    """One case's replicas on the engine, and what each step returned."""

    def __init__(self, kind: str, case: Mapping[str, Any]) -> None:
        clock = case.get("clock", DEFAULT_CLOCK)
        self.models: dict[str, Cart | StockLedger | Order] = {}
        for name, spec in case["replicas"].items():
            doc = Doc(client_id=spec["client_id"])
            if kind == "order":
                self.models[name] = Order(doc, spec["id"], clock=lambda: clock)
            elif kind == "cart":
                self.models[name] = Cart(doc, spec["id"], clock=lambda: clock)
            else:
                self.models[name] = StockLedger(doc, spec["id"], clock=lambda: clock)

    def step(self, step: Mapping[str, Any]) -> Any:
        """Perform one step; return its outcome (None for steps that return nothing)."""
        op = step["op"]
        if op == "sync":
            source, target = self.models[step["from"]].doc, self.models[step["to"]].doc
            apply_update(target, encode_diff(source, state_vector(target)))
            return None
        model = self.models[step["replica"]]
        if op == "view":
            return render(model)
        if op == "raw":
            _raw_write(model.doc, step)
            return None
        try:
            if isinstance(model, Order):
                return _edit_order(model, step)
            return _edit(self.models, model, step)
        except EngineError as exc:
            return render_error(exc)

    def views(self) -> dict[str, Any]:
        return {name: render(model) for name, model in self.models.items()}


def _raw_write(doc: Doc, step: Mapping[str, Any]) -> None:
    root = step["root"]
    if "key" in step:
        doc.get(root, type=Map)[step["key"]] = step["value"]
    else:
        doc.get(root, type=Array).append(step["value"])


def _line(step: Mapping[str, Any]) -> str:
    if "key" in step:
        return step["key"]
    return line_key(step["line"]["product"], step["line"].get("attributes"))


def _edit(models: Mapping[str, Cart | StockLedger | Order], model: Cart | StockLedger, step: Mapping[str, Any]) -> Any:
    op = step["op"]
    if isinstance(model, Cart):
        if op == "add":
            return {"key": model.add_item(step["product"], step["quantity"], step.get("attributes"))}
        if op == "set":
            model.set_quantity(_line(step), step["quantity"])
            return None
        if op == "remove":
            model.remove_line(_line(step))
            return None
        if op == "clear":
            model.clear()
            return None
        if op == "merge":
            target = models[step["into"]]
            assert isinstance(target, Cart)
            result = model.merge_into(target)
            return {
                "source": result.source, "target": result.target, "replayed": result.replayed,
                "lines": render_cart(CartView(result.lines, target.status()))["lines"],
            }
        if op == "checkout":
            status = model.check_out(step["order"], **({"at": step["at"]} if "at" in step else {}))
            return {"state": status.state, "order": status.order, "checked_out_at": status.checked_out_at}
    else:
        if op == "record":
            optional = {name: step[name] for name in ("at", "ref") if name in step}
            adjustment = model.record(
                step["id"], step["sku"], step["delta"], reason=step["reason"], actor=step["actor"], **optional
            )
            return adjustment.to_json()
        if op == "count":
            optional = {name: step[name] for name in ("at", "ref") if name in step}
            if "id" in step:
                optional["count_id"] = step["id"]
            return model.count(step["sku"], step["counted"], actor=step["actor"], **optional).to_json()
        if op == "resolve":
            if "conflict_of" in step:
                conflict = conflict_of(model, step["conflict_of"], step.get("conflict_kind"))
            else:
                conflict = step["conflict"]
            optional = {name: step[name] for name in ("at", "note", "level", "resolution_id") if name in step}
            return model.resolve(conflict, step["strategy"], actor=step["actor"], **optional).to_json()
    raise ValueError(f"unknown vector op {op!r} for {type(model).__name__}")


def conflict_of(ledger: StockLedger, sku: str, kind: str | None = None) -> str:
    """The id of the sku's open conflict (of ``kind``, if given), else of its resolved one, else ``none:{sku}``."""
    view = ledger.view()
    candidates = [c.id for c in (*view.conflicts, *view.resolved) if c.sku == sku and kind in (None, c.kind)]
    return candidates[0] if candidates else f"none:{sku}"


def run_case(kind: str, case: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Every step's outcome, and the replicas' final views (``kind``: "cart", "stock" or "order")."""
    run = CaseRun(kind, case)
    outcomes = [run.step(step) for step in case["steps"]]
    return outcomes, run.views()


def canonical_outcome(case: Mapping[str, Any]) -> dict[str, Any]:
    if "value" in case:
        return {"canonical": canonical_json(case["value"])}
    try:
        return {"line_key": line_key(case["product"], case.get("attributes"))}
    except EngineError as exc:
        return render_error(exc)


def load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def fill(document: dict[str, Any]) -> dict[str, Any]:
    """The document with every expectation replaced by what the engine does."""
    for case in document["cases"]:
        if document["kind"] == "canonical":
            case["expect"] = canonical_outcome(case)
            continue
        outcomes, views = run_case(document["kind"], case)
        for step, outcome in zip(case["steps"], outcomes, strict=True):
            step.pop("expect", None)
            if outcome is not None:
                step["expect"] = outcome
        case["expect"] = views
    return document


def main() -> None:
    for path in sorted(VECTORS.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        filled = fill(document)
        # ensure_ascii: lone surrogates in canonical cases must survive the file's UTF-8.
        path.write_text(json.dumps(filled, indent=1, ensure_ascii=True) + "\n", encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
