"""Sections 1-3: operation rates, reads on large documents, scaling with document size."""

from __future__ import annotations

import gc
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pycrdt import Array, Doc
from syncline.engine import Cart, StockLedger

from benchmarks.engine_ops.models import (
    ArrayLedger,
    CartModel,
    DomainCart,
    DomainLedger,
    OpArrayCart,
    apply_cart_step,
    record_step,
)
from benchmarks.engine_ops.running import run_interleaved
from benchmarks.engine_ops.workload import (
    CART_ID,
    LEDGER_ID,
    CartStep,
    Config,
    LineSpec,
    best_seconds,
    ledger_script,
    make_lines,
    new_doc,
    per_second,
    timed_loop,
)

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
        read_row(
            "ledger.view() after a remote change", n, remote_adjustments(ledger, reps), ledger_raw, reps,
            "kept StockLedger, one adjustment merged from another replica before each read",
        ),
    ]


def remote_adjustments(ledger: StockLedger, reps: int) -> Callable[[], object]:
    """Each call merges one more adjustment from another replica into ``ledger``'s document,
    then reads its view (only the appended entry is parsed and indexed)."""
    other = StockLedger(Doc(), LEDGER_ID)
    other.doc.apply_update(ledger.doc.get_update())
    updates = []
    for i in range(reps):
        before = other.doc.get_state()
        other.record(f"remote-{i}", "sku-00001", -1, reason="sale", actor="other-till", at=1_000 + i)
        updates.append(other.doc.get_update(before))
    pending = iter(updates)
    ledger.view()

    def merge_then_read() -> object:
        ledger.doc.apply_update(next(pending))
        return ledger.view()

    return merge_then_read


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
