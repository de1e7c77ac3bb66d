"""Engine benchmarks: operation rates, update application, document size, load time, layouts.

Run from the repository root::

    python -m benchmarks.engine_ops                 # --ops 10000: a few minutes on 2 cores
    python -m benchmarks.engine_ops --quick         # smoke run (1000 ops), under ~20 seconds
    python -m benchmarks.engine_ops --ops 3000 --out /tmp/engine_ops.json

It prints one table per section and saves everything, with machine info, as JSON
(default ``benchmarks/results/engine_ops.json``). Sections:

1. ``ops``: operations per second of the domain layer (``syncline.engine``) next to a
   raw pycrdt baseline doing the same map and array writes; ``ratio`` is
   domain ops/s divided by raw ops/s.
2. ``reads``: read costs on large documents, next to ``Array.to_py()`` and
   ``json.loads(str(array))``.
3. ``scaling``: per-operation cost against document size, with one writer and with
   two writers interleaving (a sync after every operation).
4. ``apply``: every operation's update captured with ``encode_diff(doc, sv_before)``,
   then applied in order to a fresh document.
5. ``documents``: bytes (``len(doc.get_update())``) after N operations of a cart mix
   and a stock ledger, per operation, against the raw baseline, and what the
   visible content alone would take (``live``, a fresh document holding it).
6. ``load``: ``Doc().apply_update(full_update)`` then the first ``view()``.
7. ``layouts``: document growth of alternative layouts in raw pycrdt, with 1 to 3
   writers interleaving: (a) the op array (the chosen cart layout), (b) a Y.Map of
   per-client counters per line overwritten on each add, (b2) the same counters as
   flat keys of one map; (c1) an array of adjustments (the chosen ledger layout),
   (c2) a map of adjustments keyed by id, (c3) per-sku per-client level counters
   overwritten on each adjustment (no audit trail; a size reference only). The cart
   layouts also run an adds-only script (one writer), the op array's worst case.
8. ``updates``: ``read_update`` (the relay's strict pure-Python reader) on a cart
   update and on a ~1 MB document update, next to pycrdt's ``get_state(update)``.

Every workload is generated from a fixed seed, every document uses fixed client ids
and every write happens in a fixed order, so two runs write the same bytes and only
the timings move. Repeated timings report the fastest run (the host may be shared);
the JSON records the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from pycrdt import Array, Doc, Map, get_state

from syncline.engine import Cart, StockLedger, apply_update, encode_diff, line_key, read_update, state_vector

CART_ID = "bench/cart/c-1"
LEDGER_ID = "bench/stock/north"
DEFAULT_OUT = Path("benchmarks/results/engine_ops.json")
EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

StepKind = Literal["add", "set", "remove", "clear"]
Model = TypeVar("Model")
Step = TypeVar("Step")


@dataclass(frozen=True)
class Config:
    ops: int
    reps: int
    probes: int
    quick: bool
    seed: int = 20_260_101
    lines: int = 50
    skus: int = 200
    writers: tuple[int, ...] = (1, 2, 3)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Document sizes for the single-writer scaling rows."""
        return _distinct((self.ops // 10, self.ops // 4, self.ops))

    @property
    def interleaved_sizes(self) -> tuple[int, ...]:
        """Smaller sizes for two interleaved writers, where some costs grow quadratically."""
        return _distinct((self.ops // 10, self.ops // 5, self.ops * 2 // 5))


def _distinct(values: Sequence[int]) -> tuple[int, ...]:
    return tuple(sorted({max(value, 10) for value in values}))


def client_id(writer: int) -> int:
    """Fixed, realistic (32-bit) Yjs client ids, one per writer."""
    return 0x5EED_0000 + 0x1111 * (writer + 1)


def new_doc(writer: int = 0) -> Doc[Any]:
    return Doc(client_id=client_id(writer))


# -- timing ----------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed_loop(
    count: int, op: Callable[[int], object], setup: Callable[[int], object] | None = None
) -> float:
    """Seconds spent in ``op(i)`` for ``i < count``; ``setup(i)`` runs first, untimed."""
    total = 0.0
    for i in range(count):
        if setup is not None:
            setup(i)
        start = time.perf_counter()
        op(i)
        total += time.perf_counter() - start
    return total


def best_seconds(fn: Callable[[], object], reps: int) -> float:
    """The fastest of ``reps`` runs (timeit's convention: the host may be shared)."""
    return min(timed(fn) for _ in range(reps))


def per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


# -- workloads -------------------------------------------------------------------


@dataclass(frozen=True)
class LineSpec:
    product: str
    attributes: dict[str, Any]
    key: str


@dataclass(frozen=True)
class CartStep:
    kind: StepKind
    line: int
    n: int = 0


def make_lines(count: int, prefix: str = "sku") -> list[LineSpec]:
    sizes = ("XS", "S", "M", "L", "XL")
    colors = ("black", "white", "navy", "red")
    specs = []
    for i in range(count):
        attributes = {"size": sizes[i % 5], "color": colors[(i // 5) % 4]}
        product = f"{prefix}-{i:05d}"
        specs.append(LineSpec(product, attributes, line_key(product, attributes)))
    return specs


def cart_script(ops: int, lines: int, rng: random.Random) -> list[CartStep]:
    """A realistic mix: 72% adds over ``lines`` lines, 17% sets, 10.5% removes, 0.5% clears."""
    steps: list[CartStep] = []
    known: list[int] = []
    for _ in range(ops):
        roll = rng.random()
        if not known or roll < 0.72:
            line = rng.randrange(lines)
            if line not in known:
                known.append(line)
            steps.append(CartStep("add", line, rng.randint(1, 3)))
        elif roll < 0.89:
            steps.append(CartStep("set", rng.choice(known), rng.randint(1, 5)))
        elif roll < 0.995:
            steps.append(CartStep("remove", rng.choice(known)))
        else:
            steps.append(CartStep("clear", 0))
    return steps


def ledger_script(ops: int, skus: int, rng: random.Random) -> list[dict[str, Any]]:
    """Adjustment bodies: 75% sales of 1-3, 25% restocks of 5-50, uuid ids, one per second."""
    bodies = []
    for i in range(ops):
        restock = rng.random() < 0.25
        bodies.append({
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "sku": f"sku-{rng.randrange(skus):05d}",
            "delta": rng.randint(5, 50) if restock else -rng.randint(1, 3),
            "reason": "restock" if restock else "sale",
            "actor": f"till-{rng.randrange(8)}",
            "at": EPOCH_MS + i * 1_000,
        })
    return bodies


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


# -- running a script over one or more writers -------------------------------------


def sync_from(writer: Doc[Any], others: Sequence[Doc[Any]]) -> None:
    for other in others:
        other.apply_update(writer.get_update(other.get_state()))


def run_interleaved(
    models: Sequence[Model],
    steps: Sequence[Step],
    do: Callable[[Model, Step], None],
    docs: Sequence[Doc[Any]],
) -> float:
    """Step ``i`` runs on writer ``i % len(models)``, which then syncs to every other writer."""
    start = time.perf_counter()
    for i, step in enumerate(steps):
        writer = i % len(models)
        do(models[writer], step)
        if len(models) > 1:
            sync_from(docs[writer], [doc for j, doc in enumerate(docs) if j != writer])
    return time.perf_counter() - start


@dataclass
class Captured:
    diffs: list[bytes]
    """Per step: ``encode_diff(doc, state vector before it)``."""
    transaction_bytes: int
    """Total size of the same steps' transaction updates (``Doc.observe``), for comparison."""


def run_captured(
    model: Model, doc: Doc[Any], steps: Sequence[Step], do: Callable[[Model, Step], None]
) -> Captured:
    """One writer; capture each step's update both ways."""
    diffs = []
    sizes: list[int] = []
    subscription = doc.observe(lambda event: sizes.append(len(event.update)))
    try:
        for step in steps:
            before = state_vector(doc)
            do(model, step)
            diffs.append(encode_diff(doc, before))
    finally:
        doc.unobserve(subscription)
    return Captured(diffs, sum(sizes))


def live_bytes(doc: Doc[Any], roots: Mapping[str, type[Array[Any]] | type[Map[Any]]]) -> int:
    """Bytes of a fresh document holding only ``doc``'s visible content (no history)."""
    fresh: Doc[Any] = Doc(client_id=1)
    for name, kind in roots.items():
        if kind is Array:
            items = json.loads(str(doc.get(name, type=Array)))
            if items:
                fresh[name] = Array(items)
        else:
            source = doc.get(name, type=Map)
            entries = {
                k: Map(dict(sorted((v.to_py() or {}).items()))) if isinstance(v, Map) else _plain(v)
                for k, v in sorted(source.items(), key=lambda item: item[0])
            }
            if entries:
                fresh[name] = Map(entries)
    return len(fresh.get_update())


def _plain(value: Any) -> Any:
    """Integral floats (how pycrdt hands back ints) back to ints, so both sides encode alike."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# -- 1. operation rates --------------------------------------------------------------


@dataclass
class OpRow:
    name: str
    count: int
    domain_ops_s: float
    raw_ops_s: float
    ratio: float
    domain_us_op: float
    raw_us_op: float
    note: str


def op_row(name: str, count: int, domain_s: float, raw_s: float, note: str) -> OpRow:
    domain, raw = per_second(count, domain_s), per_second(count, raw_s)
    return OpRow(name, count, domain, raw, domain / raw, domain_s / count * 1e6, raw_s / count * 1e6, note)


CartCase = Callable[[CartModel], float]


def cart_pair(case: CartCase) -> tuple[float, float]:
    """The same case on the domain cart and on the raw op-array cart: (domain s, raw s)."""
    gc.collect()
    domain = case(DomainCart(new_doc()))
    gc.collect()
    raw = case(OpArrayCart(new_doc()))
    return domain, raw


def fill(model: CartModel, lines: Sequence[LineSpec]) -> None:
    for line in lines:
        model.add(line, 1)


def case_add_new(fresh: Sequence[LineSpec]) -> CartCase:
    return lambda m: timed_loop(len(fresh), lambda i: m.add(fresh[i], 1))


def case_add_existing(lines: Sequence[LineSpec], count: int) -> CartCase:
    def run(m: CartModel) -> float:
        fill(m, lines)
        return timed_loop(count, lambda i: m.add(lines[i % len(lines)], 1))
    return run


def case_set(lines: Sequence[LineSpec], count: int, quantity: Callable[[int], int]) -> CartCase:
    """Set line ``i % len(lines)`` to ``quantity(i)``, after an untimed add to it."""
    def run(m: CartModel) -> float:
        fill(m, lines)
        return timed_loop(
            count,
            lambda i: m.set(lines[i % len(lines)], quantity(i)),
            setup=lambda i: m.add(lines[i % len(lines)], 1),
        )
    return run


def case_remove(lines: Sequence[LineSpec], count: int) -> CartCase:
    def run(m: CartModel) -> float:
        fill(m, lines)
        return timed_loop(
            count, lambda i: m.remove(lines[i % len(lines)]), setup=lambda i: m.add(lines[i % len(lines)], 1)
        )
    return run


def case_clear(lines: Sequence[LineSpec], count: int) -> CartCase:
    return lambda m: timed_loop(count, lambda i: m.clear(), setup=lambda i: fill(m, lines))


def bench_ops(cfg: Config) -> list[OpRow]:
    n = cfg.ops
    lines = make_lines(cfg.lines)
    width, clears = len(lines), max(n // 100, 5)
    after_add = f"{width}-line cart, 1 add before each (untimed)"
    rows = [
        op_row("cart.add_item (new line)", n, *cart_pair(case_add_new(make_lines(n, prefix="new"))),
               "fresh cart, N distinct lines"),
        op_row("cart.add_item (existing line)", n, *cart_pair(case_add_existing(lines, n)),
               f"{width} lines, round robin"),
        op_row("cart.set_quantity", n, *cart_pair(case_set(lines, n, lambda i: 1 + i % 5)), after_add),
        op_row("cart.remove_line", n, *cart_pair(case_remove(lines, n)), after_add),
        op_row(f"cart.clear ({width} lines)", clears, *cart_pair(case_clear(lines, clears)),
               f"{width} adds before each (untimed)"),
    ]
    bodies = ledger_script(n, cfg.skus, random.Random(cfg.seed))
    gc.collect()
    domain = DomainLedger(new_doc())
    domain_s = timed_loop(n, lambda i: domain.record(bodies[i]))
    gc.collect()
    raw = ArrayLedger(new_doc())
    raw_s = timed_loop(n, lambda i: raw.record(bodies[i]))
    note = f"fresh ledger, {cfg.skus} skus; raw: array.append"
    rows.append(op_row("ledger.record", n, domain_s, raw_s, note))
    return rows


# -- 2. reads on large documents ------------------------------------------------------


@dataclass
class ReadRow:
    name: str
    entries: int
    domain_ms: float
    raw_to_py_ms: float
    raw_json_ms: float
    ratio_to_py: float
    note: str


def raw_read_ms(array: Array[Any], reps: int) -> tuple[float, float]:
    return (
        best_seconds(array.to_py, reps) * 1e3,
        best_seconds(lambda: json.loads(str(array)), reps) * 1e3,
    )


def read_row(
    name: str, entries: int, fn: Callable[[], object], raw: tuple[float, float], reps: int, note: str
) -> ReadRow:
    gc.collect()
    ms = best_seconds(fn, reps) * 1e3
    return ReadRow(name, entries, ms, raw[0], raw[1], ms / raw[0], note)


def big_cart(cfg: Config) -> Cart:
    lines = make_lines(cfg.lines)
    cart = Cart(new_doc(), CART_ID)
    for i in range(cfg.ops):
        line = lines[i % len(lines)]
        cart.add_item(line.product, 1, line.attributes)
    return cart


def big_ledger(cfg: Config) -> StockLedger:
    ledger = DomainLedger(new_doc())
    for body in ledger_script(cfg.ops, cfg.skus, random.Random(cfg.seed)):
        ledger.record(body)
    return ledger.ledger


def bench_reads(cfg: Config) -> list[ReadRow]:
    cart, ledger = big_cart(cfg), big_ledger(cfg)
    ops = cart.doc.get("ops", type=Array)
    adjustments = ledger.doc.get("adjustments", type=Array)
    key = make_lines(1)[0].key
    cart_raw, ledger_raw = raw_read_ms(ops, cfg.reps), raw_read_ms(adjustments, cfg.reps)
    n, reps = cfg.ops, cfg.reps
    return [
        read_row("cart.view()", n, cart.view, cart_raw, reps, f"N adds over {cfg.lines} lines, no sets"),
        read_row("cart.quantity(key)", n, lambda: cart.quantity(key), cart_raw, reps, "one line, same cart"),
        read_row("ledger.view() warm", n, ledger.view, ledger_raw, reps, "parsed index cached"),
        read_row("ledger.levels()", n, ledger.levels, ledger_raw, reps, "warm"),
        read_row("ledger.conflicts()", n, ledger.conflicts, ledger_raw, reps, "warm"),
        read_row("ledger.level(sku)", n, lambda: ledger.level("sku-00001"), ledger_raw, reps, "warm"),
        read_row(
            "ledger.view() cold", n, lambda: StockLedger(ledger.doc, LEDGER_ID).view(), ledger_raw, reps,
            "new StockLedger: index rebuilt",
        ),
    ]


# -- 3. scaling --------------------------------------------------------------------------


@dataclass
class ScaleRow:
    name: str
    writers: int
    entries: int
    ms_op: float
    us_per_entry: float
    note: str


def scale_row(name: str, writers: int, entries: int, seconds: float, count: int, note: str) -> ScaleRow:
    ms = seconds / count * 1e3
    return ScaleRow(name, writers, entries, ms, ms * 1e3 / entries, note)


def interleaved_carts(size: int, writers: int, lines: Sequence[LineSpec]) -> list[DomainCart]:
    carts = [DomainCart(new_doc(w)) for w in range(writers)]
    steps = [CartStep("add", i % len(lines), 1) for i in range(size)]
    run_interleaved(carts, steps, lambda m, s: apply_cart_step(m, s, lines), [c.doc for c in carts])
    return carts


def interleaved_ledgers(size: int, writers: int, bodies: Sequence[Mapping[str, Any]]) -> list[Doc[Any]]:
    """Ledger documents built with raw appends of the same bodies, synced after each."""
    models = [ArrayLedger(new_doc(w)) for w in range(writers)]
    run_interleaved(models, bodies[:size], record_step, [m.doc for m in models])
    return [m.doc for m in models]


def bench_scaling(cfg: Config) -> list[ScaleRow]:
    lines = make_lines(cfg.lines)
    bodies = ledger_script(max(cfg.sizes) + cfg.probes * 2, cfg.skus, random.Random(cfg.seed + 1))
    rows: list[ScaleRow] = []
    for writers, sizes in ((1, cfg.sizes), (2, cfg.interleaved_sizes)):
        for size in sizes:
            rows.extend(scale_cart(size, writers, lines, cfg.probes, cfg.reps))
            rows.extend(scale_ledger(size, writers, bodies, cfg.probes, cfg.reps))
    return rows


def scale_cart(size: int, writers: int, lines: Sequence[LineSpec], probes: int, reps: int) -> list[ScaleRow]:
    gc.collect()
    cart = interleaved_carts(size, writers, lines)[0].cart
    view_s = best_seconds(cart.view, reps)
    set_s = timed_loop(probes, lambda i: cart.set_quantity(lines[i % len(lines)].key, 2))
    note = f"{size} add ops live over {len(lines)} lines"
    return [
        scale_row("cart.view()", writers, size, view_s, 1, note),
        scale_row("cart.set_quantity", writers, size, set_s, probes, note),
    ]


def scale_ledger(
    size: int, writers: int, bodies: Sequence[Mapping[str, Any]], probes: int, reps: int
) -> list[ScaleRow]:
    gc.collect()
    docs = interleaved_ledgers(size, writers, bodies)
    cold_s = best_seconds(lambda: StockLedger(docs[0], LEDGER_ID).view(), reps)
    ledgers = [DomainLedger(doc) for doc in docs]
    for ledger in ledgers:
        ledger.ledger.view()  # warm the index: the rows below measure steady state
    probe_bodies = bodies[size:size + probes]
    record_s = run_interleaved(ledgers, probe_bodies, record_step, docs)
    sync = "sync after each" if writers > 1 else "no peer"
    return [
        scale_row("ledger.view() cold", writers, size, cold_s, 1, "new StockLedger on the document"),
        scale_row("ledger.record", writers, size, record_s, probes, f"writers alternate, {sync}; incl. sync"),
    ]


# -- 4-6. documents: apply rate, bytes, load time ------------------------------------------


@dataclass
class ApplyRow:
    name: str
    updates: int
    diff_bytes_mean: float
    txn_update_bytes_mean: float
    domain_updates_s: float
    raw_updates_s: float
    ratio: float


@dataclass
class DocRow:
    name: str
    writers: int
    ops: int
    bytes: int
    bytes_op: float
    live_bytes: int
    raw_bytes: int
    ratio: float
    delete_set_bytes: int
    build_ms_op: float
    note: str


@dataclass
class LoadRow:
    name: str
    bytes: int
    apply_ms: float
    first_view_ms: float
    total_ms: float
    raw_apply_to_py_ms: float
    raw_apply_json_ms: float


@dataclass
class BuiltDoc:
    name: str
    writers: int
    ops: int
    doc: Doc[Any]
    roots: Mapping[str, type[Array[Any]] | type[Map[Any]]]
    view: Callable[[Doc[Any]], object]
    raw_bytes: int
    build_s: float
    note: str


def bench_apply(name: str, captured: Captured, reference: Doc[Any], reps: int) -> ApplyRow:
    updates = captured.diffs

    def domain() -> None:
        target: Doc[Any] = Doc()
        for update in updates:
            apply_update(target, update)
        if target.get_state() != reference.get_state():
            raise AssertionError(f"{name}: replaying the captured updates did not converge")

    def raw() -> None:
        target: Doc[Any] = Doc()
        for update in updates:
            target.apply_update(update)

    gc.collect()
    domain_s = best_seconds(domain, reps)
    gc.collect()
    raw_s = best_seconds(raw, reps)
    count = len(updates)
    d, r = per_second(count, domain_s), per_second(count, raw_s)
    diff_mean = sum(map(len, updates)) / count
    return ApplyRow(name, count, diff_mean, captured.transaction_bytes / count, d, r, d / r)


def doc_row(built: BuiltDoc) -> DocRow:
    size, ops = len(built.doc.get_update()), built.ops
    return DocRow(
        built.name, built.writers, ops, size, size / ops, live_bytes(built.doc, built.roots),
        built.raw_bytes, size / built.raw_bytes, delete_set_bytes(built.doc), built.build_s / ops * 1e3,
        built.note,
    )


def delete_set_bytes(doc: Doc[Any]) -> int:
    """Size of a diff against the document's own state vector: its whole delete set.

    Every ``encode_diff`` carries it, however small the change it reports.
    """
    return len(doc.get_update(doc.get_state()))


def load_row(built: BuiltDoc, reps: int) -> LoadRow:
    update = built.doc.get_update()
    applied: list[Doc[Any]] = []

    def apply() -> None:
        doc: Doc[Any] = Doc()
        doc.apply_update(update)
        applied.append(doc)

    def raw_read(to_py: bool) -> Callable[[], None]:
        def read() -> None:
            doc: Doc[Any] = Doc()
            doc.apply_update(update)
            for name, kind in built.roots.items():
                root = doc.get(name, type=kind)
                if to_py:
                    root.to_py()
                else:
                    json.loads(str(root))
        return read

    gc.collect()
    apply_ms = best_seconds(apply, reps) * 1e3
    view_ms = min(timed(partial(built.view, doc)) for doc in applied[:reps]) * 1e3
    return LoadRow(
        built.name, len(update), apply_ms, view_ms, apply_ms + view_ms,
        best_seconds(raw_read(True), reps) * 1e3, best_seconds(raw_read(False), reps) * 1e3,
    )


def cart_view(doc: Doc[Any]) -> object:
    return Cart(doc, CART_ID).view()


def ledger_view(doc: Doc[Any]) -> object:
    return StockLedger(doc, LEDGER_ID).view()


# -- 7. layouts ------------------------------------------------------------------------------


@dataclass
class LayoutRow:
    kind: str
    layout: str
    writers: int
    ops: int
    bytes: int
    bytes_op: float
    live_bytes: int
    overhead_bytes: int
    vs_chosen: float
    write_us_op: float
    to_py_ms: float
    json_ms: float


CART_LAYOUTS: dict[str, Callable[[Doc[Any]], CartModel]] = {
    "a: op array, delete observed (chosen)": OpArrayCart,
    "b: per-line map of client counters": NestedCounterCart,
    "b2: flat map line/client counters": FlatCounterCart,
}
LEDGER_LAYOUTS: dict[str, Callable[[Doc[Any]], LedgerModel]] = {
    "c1: array of adjustments (chosen)": ArrayLedger,
    "c2: map id -> adjustment": MapLedger,
    "c3: sku/client level counters (ref)": CounterLedger,
}


@dataclass
class LayoutRun:
    row: LayoutRow
    doc: Doc[Any]
    result: dict[str, int]


def run_layout(
    kind: str, layout: str, make: Callable[[Doc[Any]], Any], writers: int, steps: Sequence[Any],
    do: Callable[[Any, Any], None], read: Callable[[Any], dict[str, int]],
) -> LayoutRun:
    gc.collect()
    models = [make(new_doc(w)) for w in range(writers)]
    docs = [m.doc for m in models]
    build_s = run_interleaved(models, steps, do, docs)
    size = len(docs[0].get_update())
    roots = models[0].roots
    live = live_bytes(docs[0], roots)
    to_py_s = timed(lambda: [docs[0].get(name, type=kind).to_py() for name, kind in roots.items()])
    json_s = timed(lambda: [json.loads(str(docs[0].get(name, type=kind))) for name, kind in roots.items()])
    row = LayoutRow(
        kind, layout, writers, len(steps), size, size / len(steps), live, size - live, 0.0,
        build_s / len(steps) * 1e6, to_py_s * 1e3, json_s * 1e3,
    )
    return LayoutRun(row, docs[0], read(models[0]))


def bench_layouts(
    cfg: Config, carts: Sequence[CartStep], bodies: Sequence[Mapping[str, Any]]
) -> list[LayoutRun]:
    lines = make_lines(cfg.lines)
    runs: list[LayoutRun] = []
    for writers in cfg.writers:
        group = [
            run_layout("cart", name, make, writers, carts, lambda m, s: apply_cart_step(m, s, lines),
                       lambda m: m.quantities())
            for name, make in CART_LAYOUTS.items()
        ]
        runs.extend(check_group(group, "quantities"))
        group = [
            run_layout("ledger", name, make, writers, bodies, record_step, lambda m: m.levels())
            for name, make in LEDGER_LAYOUTS.items()
        ]
        runs.extend(check_group(group, "levels"))
    adds = adds_only_script(cfg.ops, cfg.lines, random.Random(cfg.seed))
    group = [
        run_layout("cart adds only", name, make, 1, adds, lambda m, s: apply_cart_step(m, s, lines),
                   lambda m: m.quantities())
        for name, make in CART_LAYOUTS.items()
    ]
    runs.extend(check_group(group, "quantities"))
    return runs


def adds_only_script(ops: int, lines: int, rng: random.Random) -> list[CartStep]:
    """The chosen cart layout's worst case: nothing ever deletes an op."""
    return [CartStep("add", rng.randrange(lines), rng.randint(1, 3)) for _ in range(ops)]


def check_group(group: list[LayoutRun], what: str) -> list[LayoutRun]:
    """Every layout must end in the same visible state, or the comparison is meaningless."""
    chosen = group[0]
    for run in group:
        if run.result != chosen.result:
            where = f"{run.row.layout} ({run.row.writers} writers)"
            raise AssertionError(f"{where}: {what} differ from the chosen layout")
        run.row.vs_chosen = run.row.bytes / chosen.row.bytes
    return group


# -- orchestration -------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "pycrdt": metadata.version("pycrdt"),
        "syncline": metadata.version("syncline"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "loadavg_start": load_average(),
        "git": git_info(),
    }


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: timings mean little on a busy host."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def git_info() -> dict[str, Any] | None:
    root = Path(__file__).resolve().parents[1]
    try:
        head = git(root, "rev-parse", "HEAD")
        status = git(root, "status", "--porcelain", "--", "engine")
    except (OSError, subprocess.CalledProcessError):
        return None
    dirty = [line[3:] for line in status.splitlines()]
    return {"commit": head.strip(), "engine_uncommitted": dirty}


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


def bench_documents(cfg: Config, layouts: Sequence[LayoutRun]) -> dict[str, Any]:
    """Sections 4-6: domain documents built from the same scripts as the raw layouts."""
    lines = make_lines(cfg.lines)
    carts = cart_script(cfg.ops, cfg.lines, random.Random(cfg.seed))
    bodies = ledger_script(cfg.ops, cfg.skus, random.Random(cfg.seed))
    chosen = {(r.row.kind, r.row.layout, r.row.writers): r for r in layouts}
    raw_cart = {w: chosen[("cart", next(iter(CART_LAYOUTS)), w)] for w in cfg.writers}
    raw_ledger = {w: chosen[("ledger", next(iter(LEDGER_LAYOUTS)), w)] for w in cfg.writers}

    cart = DomainCart(new_doc())
    cart_updates, cart_s = build_captured(cart, cart.doc, carts, lambda m, s: apply_cart_step(m, s, lines))
    check_equal(cart.quantities(), raw_cart[1].result, "cart mix: domain vs raw quantities")
    ledger = DomainLedger(new_doc())
    ledger_updates, ledger_s = build_captured(ledger, ledger.doc, bodies, record_step)
    check_equal(ledger.levels(), raw_ledger[1].result, "ledger: domain vs raw levels")
    built = [
        BuiltDoc("cart mix (domain)", 1, cfg.ops, cart.doc, CART_ROOTS, cart_view, raw_cart[1].row.bytes,
                 cart_s, f"{cfg.lines} lines: adds, sets, removes, clears; build incl. capture"),
        interleaved_cart_doc(carts[:max(cfg.interleaved_sizes)], lines),
        BuiltDoc("ledger (domain)", 1, cfg.ops, ledger.doc, LEDGER_ROOTS, ledger_view,
                 raw_ledger[1].row.bytes, ledger_s, f"{cfg.skus} skus; build incl. capture"),
        BuiltDoc("ledger (raw c1 build)", 2, cfg.ops, raw_ledger[2].doc, LEDGER_ROOTS, ledger_view,
                 raw_ledger[2].row.bytes, raw_ledger[2].row.write_us_op * cfg.ops / 1e6,
                 "raw appends + sync: domain record() is O(n)/op here"),
    ]
    return {
        "apply": [
            bench_apply("cart mix", cart_updates, cart.doc, cfg.reps),
            bench_apply("ledger", ledger_updates, ledger.doc, cfg.reps),
        ],
        "documents": [doc_row(b) for b in built],
        "load": [load_row(b, 2 if b.writers > 1 else cfg.reps) for b in built],
    }


def build_captured(
    model: Model, doc: Doc[Any], steps: Sequence[Step], do: Callable[[Model, Step], None]
) -> tuple[Captured, float]:
    """Run ``steps`` on one writer, capturing updates; return them and the seconds taken."""
    gc.collect()
    start = time.perf_counter()
    captured = run_captured(model, doc, steps, do)
    return captured, time.perf_counter() - start


def interleaved_cart_doc(steps: Sequence[CartStep], lines: Sequence[LineSpec]) -> BuiltDoc:
    """Two domain carts running the cart mix with a sync after every op, and the raw equivalent.

    Capped at the largest interleaved size: per-op costs grow with the document here.
    """
    do: Callable[[CartModel, CartStep], None] = lambda m, s: apply_cart_step(m, s, lines)
    raw = run_layout("cart", "raw", OpArrayCart, 2, steps, do, lambda m: m.quantities())
    gc.collect()
    pair = [DomainCart(new_doc(w)) for w in range(2)]
    seconds = run_interleaved(pair, steps, do, [m.doc for m in pair])
    check_equal(pair[0].quantities(), raw.result, "cart mix, 2 writers: domain vs raw quantities")
    return BuiltDoc(
        "cart mix (domain)", 2, len(steps), pair[0].doc, CART_ROOTS, cart_view, raw.row.bytes, seconds,
        "first ops of the same script, writers alternate; build incl. sync",
    )


def check_equal(left: Mapping[str, int], right: Mapping[str, int], what: str) -> None:
    if dict(left) != dict(right):
        raise AssertionError(f"{what} differ: the baseline does not do the same work")


@dataclass
class UpdateReadRow:
    name: str
    bytes: int
    structs: int
    read_update_us: float
    pycrdt_get_state_us: float
    ratio: float


def bench_update_reads(cfg: Config) -> list[UpdateReadRow]:
    """Section 8: the cost of reading an update strictly before any CRDT library sees it."""
    cart = Cart.new(CART_ID, client_id=client_id(0), clock=lambda: EPOCH_MS)
    line = cart.add_item("sku-1", 2, {"color": "oak"})
    before = cart.doc.get_state()
    cart.set_quantity(line, 5)
    cart_update = cart.doc.get_update(before)
    rng = random.Random(cfg.seed)
    doc = new_doc()
    ops: Array[Any] = doc.get("ops", type=Array)
    big = doc.get_update()
    while len(big) < 1_000_000:
        with doc.transaction():
            for _ in range(500):
                ops.append({"sku": f"sku-{rng.randrange(cfg.skus)}", "delta": rng.randrange(-5, 6),
                            "at": EPOCH_MS + rng.randrange(10**9)})
        big = doc.get_update()
    rows = []
    for name, update, calls in (("cart set-quantity", cart_update, 2000), ("document ~1 MB", big, 1)):
        read_s = best_seconds(lambda u=update, n=calls: [read_update(u) for _ in range(n)], cfg.reps) / calls
        yrs_s = best_seconds(lambda u=update, n=calls: [get_state(u) for _ in range(n)], cfg.reps) / calls
        rows.append(UpdateReadRow(name, len(update), read_update(update).struct_count, read_s * 1e6,
                                  yrs_s * 1e6, read_s / yrs_s))
    return rows


def run(cfg: Config) -> dict[str, Any]:
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine_info(), "config": asdict(cfg)}
    section("1. operation rates", lambda: results.__setitem__("ops", bench_ops(cfg)))
    section("2. reads", lambda: results.__setitem__("reads", bench_reads(cfg)))
    section("3. scaling", lambda: results.__setitem__("scaling", bench_scaling(cfg)))
    carts = cart_script(cfg.ops, cfg.lines, random.Random(cfg.seed))
    bodies = ledger_script(cfg.ops, cfg.skus, random.Random(cfg.seed))
    layouts: list[LayoutRun] = []
    section("7. layouts", lambda: layouts.extend(bench_layouts(cfg, carts, bodies)))
    results["layouts"] = [run.row for run in layouts]
    section("4-6. documents", lambda: results.update(bench_documents(cfg, layouts)))
    section("8. update reads", lambda: results.__setitem__("updates", bench_update_reads(cfg)))
    results["config"]["sizes"] = cfg.sizes
    results["config"]["interleaved_sizes"] = cfg.interleaved_sizes
    results["elapsed_s"] = time.perf_counter() - started
    results["machine"]["loadavg_end"] = load_average()
    return results


def section(title: str, fn: Callable[[], object]) -> None:
    print(f"running {title} ...", file=sys.stderr, flush=True)
    seconds = timed(fn)
    print(f"  done in {seconds:.1f} s", file=sys.stderr, flush=True)


# -- output ------------------------------------------------------------------------------


def fmt(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def print_table(title: str, rows: Sequence[Any], columns: Sequence[str] | None = None) -> None:
    if not rows:
        return
    dicts = [asdict(row) for row in rows]
    headers = list(columns or dicts[0].keys())
    cells = [[fmt(d[h]) for h in headers] for d in dicts]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [isinstance(dicts[0][h], (int, float)) and not isinstance(dicts[0][h], bool) for h in headers]
    print(f"\n## {title}")
    print("  ".join(h.rjust(w) if num else h.ljust(w) for h, w, num in zip(headers, widths, numeric)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)))


def report(results: Mapping[str, Any]) -> None:
    m = results["machine"]
    print(f"Syncline engine benchmarks: {results['config']['ops']:,} ops, python {m['python']}, "
          f"pycrdt {m['pycrdt']}, {m['platform']}, {m['cpu_count']} cpus, {m['timestamp']}")
    print_table("1. operation rates (ratio = domain ops/s / raw ops/s)", results["ops"])
    print_table("2. reads on large documents (ms per call; ratio = domain / raw to_py)", results["reads"])
    print_table("3. scaling (ms per op against entries in the document)", results["scaling"])
    print_table(
        "4. per-op updates applied to a fresh document (diff = encode_diff(doc, sv_before); "
        "txn = the transaction's own update; ratio = domain / raw)",
        results["apply"],
    )
    print_table("5. document bytes after N ops (ratio = domain / raw bytes)", results["documents"])
    print_table("6. load: Doc().apply_update(full) then the first view()", results["load"])
    print_table("7. layouts in raw pycrdt (overhead = bytes - live: tombstones, item headers)",
                results["layouts"])
    print_table("8. reading an update: read_update vs pycrdt get_state (µs per call; ratio = read / get_state)",
                results["updates"])
    print(f"\ntotal {results['elapsed_s']:.1f} s; load average at start {m['loadavg_start']}, "
          f"at end {m['loadavg_end']}")


def to_json(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return to_json(asdict(value))
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, float):
        return round(value, 4)
    return value


def parse_args(argv: Sequence[str] | None = None) -> tuple[Config, Path]:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.engine_ops", description=summary)
    parser.add_argument("--ops", type=int, default=None, help="operations per workload (default 10000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1000 ops and fewer repetitions")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    ops = args.ops if args.ops is not None else (1000 if args.quick else 10_000)
    if ops < 100:
        parser.error("--ops must be at least 100")
    cfg = Config(ops=ops, reps=3 if args.quick else 5, probes=5 if args.quick else 10, quick=args.quick)
    return cfg, args.out


def main(argv: Sequence[str] | None = None) -> None:
    cfg, out = parse_args(argv)
    results = run(cfg)
    report(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(to_json(results), indent=2) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
