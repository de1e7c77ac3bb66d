"""The cart and ledger models compared: the domain layer and raw pycrdt layouts."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from pycrdt import Array, Doc, Map
from syncline.engine import Cart, StockLedger

from benchmarks.engine_ops.workload import CART_ID, LEDGER_ID, CartStep, LineSpec

# -- cart models: the domain layer and raw pycrdt layouts ------------------------


class CartModel(Protocol):
    doc: Doc[Any]
    roots: Mapping[str, type[Array[Any]] | type[Map[Any]]]

    def add(self, line: LineSpec, n: int) -> None: ...
    def set(self, line: LineSpec, n: int) -> None: ...
    def remove(self, line: LineSpec) -> None: ...
    def clear(self) -> None: ...
    def quantities(self) -> dict[str, int]: ...


CART_ROOTS: Mapping[str, type[Array[Any]] | type[Map[Any]]] = {"lines": Map, "ops": Array, "cart": Map}


class DomainCart:
    """The engine's Cart."""

    roots = CART_ROOTS

    def __init__(self, doc: Doc[Any]) -> None:
        self.doc = doc
        self.cart = Cart(doc, CART_ID)

    def add(self, line: LineSpec, n: int) -> None:
        self.cart.add_item(line.product, n, line.attributes)

    def set(self, line: LineSpec, n: int) -> None:
        self.cart.set_quantity(line.key, n)

    def remove(self, line: LineSpec) -> None:
        self.cart.remove_line(line.key)

    def clear(self) -> None:
        self.cart.clear()

    def quantities(self) -> dict[str, int]:
        return {line.key: line.quantity for line in self.cart.view().lines}


class OpArrayCart:
    """(a) The cart layout in raw pycrdt: the same map entries and op dicts, no validation.

    Set, remove and clear find the line's ops with one ``str(array)`` JSON scan.
    """

    roots = CART_ROOTS

    def __init__(self, doc: Doc[Any]) -> None:
        self.doc = doc
        self.lines = doc.get("lines", type=Map)
        self.ops = doc.get("ops", type=Array)
        self._clock = 0

    def _id(self) -> str:
        self._clock += 1
        return f"{self.doc.client_id:x}.{self._clock:x}"

    def add(self, line: LineSpec, n: int) -> None:
        with self.doc.transaction():
            if line.key not in self.lines:
                self.lines[line.key] = {"product": line.product, "attributes": line.attributes}
            self.ops.append({"id": self._id(), "l": line.key, "k": "add", "n": n})

    def set(self, line: LineSpec, n: int) -> None:
        self._replace({line.key}, n)

    def remove(self, line: LineSpec) -> None:
        self._replace({line.key}, 0)

    def clear(self) -> None:
        self._replace(None, 0)

    def _replace(self, keys: Collection[str] | None, n: int) -> None:
        entries = json.loads(str(self.ops))
        indices = [i for i, entry in enumerate(entries) if keys is None or entry["l"] in keys]
        with self.doc.transaction():
            delete_runs(self.ops, indices)
            for key in sorted(keys or ()) if n > 0 else ():
                self.ops.append({"id": self._id(), "l": key, "k": "set", "n": n})

    def quantities(self) -> dict[str, int]:
        sets: dict[str, int] = {}
        adds: dict[str, int] = {}
        for entry in json.loads(str(self.ops)):
            target = sets if entry["k"] == "set" else adds
            key: str = entry["l"]
            n = int(entry["n"])
            target[key] = max(target.get(key, 0), n) if target is sets else target.get(key, 0) + n
        totals = {key: sets.get(key, 0) + adds.get(key, 0) for key in {*sets, *adds}}
        return {key: total for key, total in totals.items() if total > 0}


def delete_runs(array: Array[Any], indices: Sequence[int]) -> None:
    """Delete ``indices`` last first, one call per contiguous run (what Cart does)."""
    runs: list[list[int]] = []
    for index in sorted(indices, reverse=True):
        if runs and runs[-1][0] == index + 1:
            runs[-1][0] = index
        else:
            runs.append([index, index + 1])
    for start, stop in runs:
        del array[start:stop]


class NestedCounterCart:
    """(b) ``counts``: line key -> Y.Map of client id -> that client's running total.

    Every add overwrites the writer's key in the line's map; a set writes
    ``n - sum(other clients)`` there. The line map is created by the first add.
    """

    roots: Mapping[str, type[Array[Any]] | type[Map[Any]]] = {"lines": Map, "counts": Map}

    def __init__(self, doc: Doc[Any]) -> None:
        self.doc = doc
        self.lines = doc.get("lines", type=Map)
        self.counts = doc.get("counts", type=Map)
        self.me = f"{doc.client_id:x}"

    def add(self, line: LineSpec, n: int) -> None:
        with self.doc.transaction():
            if line.key not in self.lines:
                self.lines[line.key] = {"product": line.product, "attributes": line.attributes}
            per_client = self.counts.get(line.key)
            if per_client is None:
                self.counts[line.key] = Map({self.me: n})
            else:
                per_client[self.me] = int(per_client.get(self.me, 0)) + n

    def set(self, line: LineSpec, n: int) -> None:
        with self.doc.transaction():
            per_client = self.counts.get(line.key)
            if per_client is None:
                self.counts[line.key] = Map({self.me: n})
                return
            others = sum(int(v) for k, v in per_client.items() if k != self.me)
            per_client[self.me] = n - others

    def remove(self, line: LineSpec) -> None:
        self.set(line, 0)

    def clear(self) -> None:
        with self.doc.transaction():
            for key in sorted(self.counts.keys()):  # Yrs iterates keys in a random order
                per_client = self.counts[key]
                others = sum(int(v) for k, v in per_client.items() if k != self.me)
                per_client[self.me] = -others

    def quantities(self) -> dict[str, int]:
        totals = {key: int(sum(per.values())) for key, per in self.counts.to_py().items()}
        return {key: total for key, total in totals.items() if total > 0}


class FlatCounterCart:
    """(b2) ``counts``: ``"{line key}/{client}"`` -> running total, in one flat map."""

    roots: Mapping[str, type[Array[Any]] | type[Map[Any]]] = {"lines": Map, "counts": Map}

    def __init__(self, doc: Doc[Any]) -> None:
        self.doc = doc
        self.lines = doc.get("lines", type=Map)
        self.counts = doc.get("counts", type=Map)
        self.me = f"{doc.client_id:x}"

    def add(self, line: LineSpec, n: int) -> None:
        mine = f"{line.key}/{self.me}"
        with self.doc.transaction():
            if line.key not in self.lines:
                self.lines[line.key] = {"product": line.product, "attributes": line.attributes}
            self.counts[mine] = int(self.counts.get(mine, 0)) + n

    def set(self, line: LineSpec, n: int) -> None:
        with self.doc.transaction():
            self._set(line.key, n, dict(self.counts.items()))

    def _set(self, key: str, n: int, counts: Mapping[str, Any]) -> None:
        mine = f"{key}/{self.me}"
        others = sum(int(v) for k, v in counts.items() if k.startswith(f"{key}/") and k != mine)
        self.counts[mine] = n - others

    def remove(self, line: LineSpec) -> None:
        self.set(line, 0)

    def clear(self) -> None:
        with self.doc.transaction():
            counts = dict(self.counts.items())
            for key in sorted({k.split("/")[0] for k in counts}):
                self._set(key, 0, counts)

    def quantities(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for composite, value in self.counts.to_py().items():
            key = composite.split("/")[0]
            totals[key] = totals.get(key, 0) + int(value)
        return {key: total for key, total in totals.items() if total > 0}


def apply_cart_step(model: CartModel, step: CartStep, specs: Sequence[LineSpec]) -> None:
    line = specs[step.line]
    if step.kind == "add":
        model.add(line, step.n)
    elif step.kind == "set":
        model.set(line, step.n)
    elif step.kind == "remove":
        model.remove(line)
    else:
        model.clear()


# -- ledger models -----------------------------------------------------------------


class LedgerModel(Protocol):
    doc: Doc[Any]
    roots: Mapping[str, type[Array[Any]] | type[Map[Any]]]

    def record(self, body: Mapping[str, Any]) -> None: ...
    def levels(self) -> dict[str, int]: ...


LEDGER_ROOTS: Mapping[str, type[Array[Any]] | type[Map[Any]]] = {"adjustments": Array, "resolutions": Array}


class DomainLedger:
    """The engine's StockLedger."""

    roots = LEDGER_ROOTS

    def __init__(self, doc: Doc[Any]) -> None:
        self.doc = doc
        self.ledger = StockLedger(doc, LEDGER_ID)

    def record(self, body: Mapping[str, Any]) -> None:
        self.ledger.record(
            body["id"], body["sku"], body["delta"], reason=body["reason"], actor=body["actor"], at=body["at"]
        )

    def levels(self) -> dict[str, int]:
        return dict(self.ledger.levels())


class ArrayLedger:
    """(c1) The ledger layout in raw pycrdt: ``adjustments.append(body)``."""

    roots = LEDGER_ROOTS

    def __init__(self, doc: Doc[Any]) -> None:
        self.doc = doc
        self.adjustments = doc.get("adjustments", type=Array)

    def record(self, body: Mapping[str, Any]) -> None:
        self.adjustments.append(dict(body))

    def levels(self) -> dict[str, int]:
        return sum_levels(json.loads(str(self.adjustments)))


class MapLedger:
    """(c2) ``adjustments``: adjustment id -> body without the id, one map key per adjustment."""

    roots: Mapping[str, type[Array[Any]] | type[Map[Any]]] = {"adjustments": Map}

    def __init__(self, doc: Doc[Any]) -> None:
        self.doc = doc
        self.adjustments = doc.get("adjustments", type=Map)

    def record(self, body: Mapping[str, Any]) -> None:
        self.adjustments[body["id"]] = {k: v for k, v in body.items() if k != "id"}

    def levels(self) -> dict[str, int]:
        return sum_levels(json.loads(str(self.adjustments)).values())


class CounterLedger:
    """(c3) ``levels``: ``"{sku}/{client}"`` -> running total, overwritten per adjustment.

    Not an audit trail and not idempotent: a size reference for key overwrites only.
    """

    roots: Mapping[str, type[Array[Any]] | type[Map[Any]]] = {"levels": Map}

    def __init__(self, doc: Doc[Any]) -> None:
        self.doc = doc
        self.counters = doc.get("levels", type=Map)
        self.me = f"{doc.client_id:x}"

    def record(self, body: Mapping[str, Any]) -> None:
        key = f"{body['sku']}/{self.me}"
        with self.doc.transaction():
            self.counters[key] = int(self.counters.get(key, 0)) + body["delta"]

    def levels(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for composite, value in self.counters.to_py().items():
            sku = composite.split("/")[0]
            totals[sku] = totals.get(sku, 0) + int(value)
        return totals


def sum_levels(bodies: Any) -> dict[str, int]:
    levels: dict[str, int] = {}
    for body in bodies:
        levels[body["sku"]] = levels.get(body["sku"], 0) + int(body["delta"])
    return levels


def record_step(model: LedgerModel, body: Mapping[str, Any]) -> None:
    model.record(body)
