"""Sections 4-8: update application, document bytes, load time, layouts, reading updates."""

from __future__ import annotations

import gc
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from pycrdt import Array, Doc, Map, get_state
from syncline.engine import Cart, StockLedger, apply_update, read_update

from benchmarks.engine_ops.models import (
    CART_ROOTS,
    LEDGER_ROOTS,
    ArrayLedger,
    CartModel,
    CounterLedger,
    DomainCart,
    DomainLedger,
    FlatCounterCart,
    LedgerModel,
    MapLedger,
    NestedCounterCart,
    OpArrayCart,
    apply_cart_step,
    record_step,
)
from benchmarks.engine_ops.running import Captured, live_bytes, run_captured, run_interleaved
from benchmarks.engine_ops.workload import (
    CART_ID,
    EPOCH_MS,
    LEDGER_ID,
    CartStep,
    Config,
    LineSpec,
    Model,
    Step,
    best_seconds,
    cart_script,
    client_id,
    ledger_script,
    make_lines,
    new_doc,
    per_second,
    timed,
)

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
