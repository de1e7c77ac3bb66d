"""Stock ledgers: levels as sums, idempotent adjustments, derived conflicts and their resolution."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc
from syncline.engine import (
    Adjustment,
    DuplicateAdjustment,
    Resolution,
    StockLedger,
    UnknownConflict,
    apply_update,
)

from syncline.engine.schema import ArrayTail

from .helpers import copy_doc, snapshot, sync


class Clock:
    """An injected clock that only moves when told to."""

    def __init__(self, now: int = 10_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def ledger(client_id: int = 1, clock: Clock | None = None) -> StockLedger:
    return StockLedger.new("store-1", client_id=client_id, clock=clock or Clock())


def replica(source: StockLedger, client_id: int, clock: Clock | None = None) -> StockLedger:
    return StockLedger(copy_doc(source.doc, client_id), source.location_id, clock=clock or Clock())


def oversold(last_units: int = 1, clock: Clock | None = None) -> tuple[StockLedger, StockLedger]:
    """Two tills, offline, each selling the last ``last_units`` of sku-1; synced afterwards."""
    a = ledger(1, clock)
    a.record("restock-1", "sku-1", last_units, reason="restock", actor="alice", at=1_000)
    b = replica(a, 2)
    a.record("sale-a", "sku-1", -last_units, reason="sale", actor="till-a", at=2_000)
    b.record("sale-b", "sku-1", -last_units, reason="sale", actor="till-b", at=2_001)
    sync(a.doc, b.doc)
    return a, b


# -- levels and idempotency ------------------------------------------------------------


def test_the_level_of_a_sku_is_the_sum_of_its_deltas() -> None:
    stock = ledger()
    stock.record("a1", "sku-1", 10, reason="restock", actor="alice", at=1)
    stock.record("a2", "sku-1", -3, reason="sale", actor="till", at=2)
    stock.record("a3", "sku-1", -2, reason="sale", actor="till", at=3)
    stock.record("a4", "sku-2", 7, reason="restock", actor="alice", at=4, ref="PO-17")
    assert stock.level("sku-1") == 5
    assert stock.levels() == {"sku-1": 5, "sku-2": 7}
    assert stock.level("never-seen") == 0
    assert stock.conflicts() == ()


def test_recording_the_same_adjustment_twice_counts_once_and_writes_no_byte() -> None:
    stock = ledger()
    first = stock.record("a1", "sku-1", 4, reason="restock", actor="alice", at=1_000, ref="PO-1")
    before = snapshot(stock.doc)
    again = stock.record("a1", "sku-1", 4, reason="restock", actor="alice", at=1_000, ref="PO-1")
    assert again == first
    assert snapshot(stock.doc) == before
    assert stock.level("sku-1") == 4
    assert len(stock.view().adjustments) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"sku": "sku-2"},
        {"delta": 5},
        {"reason": "count"},
        {"actor": "bob"},
        {"at": 1_001},
        {"ref": "PO-2"},
        {"ref": None},
    ],
    ids=["sku", "delta", "reason", "actor", "at", "ref", "no-ref"],
)
def test_the_same_id_with_a_different_body_raises_duplicate_adjustment_and_writes_nothing(
    change: dict,
) -> None:
    stock = ledger()
    body = {"sku": "sku-1", "delta": 4, "reason": "restock", "actor": "alice", "at": 1_000, "ref": "PO-1"}
    stock.record("a1", **body)
    before = snapshot(stock.doc)
    with pytest.raises(DuplicateAdjustment) as info:
        stock.record("a1", **{**body, **change})
    assert info.value.adjustment_id == "a1"
    assert snapshot(stock.doc) == before
    assert stock.level("sku-1") == 4


def test_a_retry_without_at_is_recognised_although_the_clock_moved() -> None:
    clock = Clock(5_000)
    stock = ledger(clock=clock)
    first = stock.record("a1", "sku-1", -2, reason="sale", actor="till")
    assert first.at == 5_000
    clock.now = 9_000
    before = snapshot(stock.doc)
    assert stock.record("a1", "sku-1", -2, reason="sale", actor="till") == first
    assert snapshot(stock.doc) == before
    with pytest.raises(DuplicateAdjustment):
        stock.record("a1", "sku-1", -3, reason="sale", actor="till")
    assert stock.level("sku-1") == -2


def test_an_adjustment_delivered_twice_over_the_network_counts_once() -> None:
    a = ledger(1)
    a.record("a1", "sku-1", 6, reason="restock", actor="alice", at=1)
    b = ledger(2)
    update = a.doc.get_update()
    apply_update(b.doc, update)
    once = snapshot(b.doc)
    apply_update(b.doc, update)
    assert snapshot(b.doc) == once
    assert b.level("sku-1") == 6


def test_the_same_adjustment_recorded_on_two_offline_replicas_counts_once() -> None:
    a, b = ledger(1), ledger(2)
    for stock in (a, b):  # e.g. a retried REST call that reached two relays
        stock.record("a1", "sku-1", 6, reason="restock", actor="alice", at=1)
    sync(a.doc, b.doc)
    assert a.level("sku-1") == b.level("sku-1") == 6
    assert a.view() == b.view()
    assert len(a.view().adjustments) == 1


def test_one_id_recorded_with_two_bodies_offline_counts_one_of_them_on_every_replica() -> None:
    a, b = ledger(1), ledger(2)
    a.record("a1", "sku-1", 6, reason="restock", actor="alice", at=1)
    b.record("a1", "sku-1", 9, reason="restock", actor="bob", at=1)
    sync(a.doc, b.doc)
    assert a.view() == b.view()
    assert a.level("sku-1") in (6, 9)
    assert any("a1" in issue.path for issue in a.view().issues)


# -- conflicts -------------------------------------------------------------------------


def test_an_oversell_on_two_offline_replicas_derives_the_same_conflict_on_both() -> None:
    a, b = oversold()
    assert a.level("sku-1") == b.level("sku-1") == -1
    (conflict,) = a.conflicts()
    assert b.conflicts() == (conflict,)
    assert conflict.sku == "sku-1"
    assert conflict.level == -1
    assert conflict.kind == "negative_level"
    assert conflict.adjustments == ("sale-a", "sale-b")
    fresh = StockLedger.new("store-1", client_id=3)
    apply_update(fresh.doc, b.doc.get_update())
    assert fresh.conflicts() == (conflict,)


def test_a_restock_that_leaves_the_level_negative_keeps_the_conflict_id() -> None:
    a, b = oversold(last_units=5)
    (before,) = a.conflicts()
    assert before.level == -5
    a.record("restock-2", "sku-1", 2, reason="restock", actor="alice", at=3_000)
    sync(a.doc, b.doc)
    (after,) = b.conflicts()
    assert after.id == before.id
    assert after.level == -3


def test_a_restock_to_zero_or_more_ends_the_conflict() -> None:
    a, _ = oversold()
    a.record("restock-2", "sku-1", 1, reason="restock", actor="alice", at=3_000)
    assert a.level("sku-1") == 0
    assert a.conflicts() == ()


def test_a_further_sale_changes_the_conflict_id() -> None:
    a, b = oversold()
    (before,) = a.conflicts()
    b.record("sale-c", "sku-1", -1, reason="sale", actor="till-b", at=3_000)
    sync(a.doc, b.doc)
    (after,) = a.conflicts()
    assert after.id != before.id
    assert after.adjustments == ("sale-a", "sale-b", "sale-c")
    assert b.conflicts() == (after,)


# -- resolution ------------------------------------------------------------------------


def test_accepting_a_conflict_records_the_decision_and_keeps_the_level() -> None:
    a, _ = oversold()
    (conflict,) = a.conflicts()
    resolution = a.resolve(conflict.id, "accept", actor="manager", at=5_000, note="backorder")
    assert resolution == Resolution(
        resolution.id, conflict.id, "sku-1", "accept", "manager", 5_000, "backorder", None, None
    )
    assert a.level("sku-1") == -1
    assert a.conflicts() == ()
    assert a.view().resolved == (conflict,)
    assert resolution in a.history("sku-1")


def test_compensating_a_conflict_brings_the_level_to_zero_with_a_recorded_adjustment() -> None:
    a, b = oversold(last_units=2)
    (conflict,) = a.conflicts()
    resolution = a.resolve(conflict.id, "compensate", actor="manager", at=5_000)
    assert a.level("sku-1") == 0
    assert resolution.strategy == "compensate"
    assert (resolution.actor, resolution.at) == ("manager", 5_000)
    assert resolution.adjustment == f"resolve:{conflict.id}"
    history = a.history("sku-1")
    compensation = next(e for e in history if isinstance(e, Adjustment) and e.id == resolution.adjustment)
    assert (compensation.delta, compensation.actor, compensation.at, compensation.ref) == (
        2,
        "manager",
        5_000,
        conflict.id,
    )
    assert resolution in history
    sync(a.doc, b.doc)
    assert b.level("sku-1") == 0
    assert b.conflicts() == ()
    assert b.view() == a.view()


@pytest.mark.parametrize("level", [0, 3, 40])
def test_merging_a_conflict_with_a_recount_sets_the_level(level: int) -> None:
    a, _ = oversold()
    (conflict,) = a.conflicts()
    resolution = a.resolve(conflict.id, "merge", actor="auditor", at=6_000, level=level, note="recount")
    assert a.level("sku-1") == level
    assert (resolution.strategy, resolution.level, resolution.actor, resolution.at) == (
        "merge",
        level,
        "auditor",
        6_000,
    )
    assert resolution.note == "recount"
    assert a.conflicts() == ()
    entries = a.history("sku-1")
    assert resolution in entries
    assert any(
        isinstance(e, Adjustment) and e.id == resolution.adjustment and e.actor == "auditor" for e in entries
    )


def test_resolution_time_defaults_to_the_injected_clock() -> None:
    clock = Clock(10_000)
    a, _ = oversold(clock=clock)
    clock.now = 77_000
    (conflict,) = a.conflicts()
    resolution = a.resolve(conflict.id, "compensate", actor="manager")
    assert resolution.at == 77_000
    assert [e.at for e in a.history("sku-1") if e.id in (resolution.id, resolution.adjustment)] == [
        77_000,
        77_000,
    ]


def test_concurrent_compensate_and_merge_of_one_conflict_converge_to_one_counted_adjustment() -> None:
    a, b = oversold(last_units=3)
    (conflict,) = a.conflicts()
    compensated = a.resolve(conflict.id, "compensate", actor="anna", at=7_000)
    merged = b.resolve(conflict.id, "merge", actor="ben", at=7_001, level=10)
    sync(a.doc, b.doc)
    assert a.view() == b.view()
    view = a.view()
    counted = [adj for adj in view.adjustments if adj.id == f"resolve:{conflict.id}"]
    assert len(counted) == 1
    assert view.levels["sku-1"] in (0, 10)
    assert view.levels["sku-1"] == -3 + counted[0].delta
    assert {(r.strategy, r.actor) for r in view.resolutions} == {("compensate", "anna"), ("merge", "ben")}
    assert compensated in view.resolutions and merged in view.resolutions
    assert view.conflicts == ()


def test_resolving_an_unknown_conflict_raises_and_writes_nothing() -> None:
    a, _ = oversold()
    before = snapshot(a.doc)
    with pytest.raises(UnknownConflict) as info:
        a.resolve("negative_level:000000000000000000000000", "accept", actor="manager", at=1)
    assert info.value.conflict_id == "negative_level:000000000000000000000000"
    assert snapshot(a.doc) == before


@pytest.mark.parametrize("strategy", ["accept", "compensate"])
def test_resolving_a_closed_conflict_again_raises_unknown_conflict(strategy: str) -> None:
    a, _ = oversold()
    (conflict,) = a.conflicts()
    a.resolve(conflict.id, strategy, actor="manager", at=5_000)  # type: ignore[arg-type]
    before = snapshot(a.doc)
    with pytest.raises(UnknownConflict):
        a.resolve(conflict.id, "merge", actor="manager", at=5_001, level=4)
    assert snapshot(a.doc) == before


def test_a_conflict_that_a_restock_ended_cannot_be_resolved() -> None:
    a, _ = oversold()
    (conflict,) = a.conflicts()
    a.record("restock-2", "sku-1", 5, reason="restock", actor="alice", at=3_000)
    with pytest.raises(UnknownConflict):
        a.resolve(conflict.id, "accept", actor="manager", at=5_000)


def test_a_resolution_id_replayed_returns_the_first_decision_and_writes_nothing() -> None:
    a, _ = oversold(last_units=2)
    (conflict,) = a.conflicts()
    first = a.resolve(conflict.id, "compensate", actor="manager", at=5_000, resolution_id="req-42")
    assert first.id == "req-42"
    before = snapshot(a.doc)
    again = a.resolve(conflict.id, "compensate", actor="manager", at=5_000, resolution_id="req-42")
    assert again == first
    assert snapshot(a.doc) == before
    assert a.level("sku-1") == 0
    assert [r.id for r in a.view().resolutions] == ["req-42"]


def test_a_resolution_id_replayed_on_another_replica_after_sync_writes_nothing() -> None:
    a, b = oversold()
    (conflict,) = a.conflicts()
    first = a.resolve(conflict.id, "accept", actor="manager", at=5_000, resolution_id="req-42")
    sync(a.doc, b.doc)
    before = snapshot(b.doc)
    assert b.resolve(conflict.id, "accept", actor="manager", at=5_000, resolution_id="req-42") == first
    assert snapshot(b.doc) == before


def test_a_new_sale_after_a_resolution_opens_a_new_conflict() -> None:
    a, _ = oversold()
    (conflict,) = a.conflicts()
    a.resolve(conflict.id, "accept", actor="manager", at=5_000)
    a.record("sale-c", "sku-1", -1, reason="sale", actor="till-a", at=6_000)
    (reopened,) = a.conflicts()
    assert reopened.id != conflict.id
    assert reopened.level == -2


# -- history ----------------------------------------------------------------------------


def test_history_lists_a_skus_adjustments_and_decisions_in_time_then_id_order() -> None:
    stock = ledger()
    stock.record("b-late", "sku-1", 5, reason="restock", actor="alice", at=3_000)
    stock.record("z-early", "sku-1", 5, reason="restock", actor="alice", at=1_000)
    stock.record("a-early", "sku-1", -1, reason="sale", actor="till", at=1_000)
    stock.record("other", "sku-2", 5, reason="restock", actor="alice", at=2_000)
    stock.record("m-mid", "sku-1", -20, reason="sale", actor="till", at=2_000)
    (conflict,) = stock.conflicts()
    resolution = stock.resolve(conflict.id, "accept", actor="manager", at=2_500, resolution_id="res-1")
    entries = stock.history("sku-1")
    assert [e.id for e in entries] == ["a-early", "z-early", "m-mid", "res-1", "b-late"]
    assert entries[3] == resolution
    assert [e.id for e in stock.history("sku-2")] == ["other"]
    assert len(stock.history()) == 6
    assert [(e.at, e.id) for e in stock.history()] == sorted((e.at, e.id) for e in stock.history())


def test_history_is_the_same_on_every_replica_whatever_the_delivery_order() -> None:
    a, b = ledger(1), ledger(2)
    a.record("a1", "sku-1", 5, reason="restock", actor="alice", at=2_000)
    b.record("b1", "sku-1", -1, reason="sale", actor="till", at=1_000)
    a.record("a2", "sku-1", -1, reason="sale", actor="till", at=1_000)
    sync(a.doc, b.doc)
    assert a.history("sku-1") == b.history("sku-1")
    assert [e.id for e in a.history("sku-1")] == ["a2", "b1", "a1"]


# -- a kept ledger reads what a fresh one reads ----------------------------------------------

_FOREIGN_VALUES = st.one_of(
    st.sampled_from([1, -2, True, False, 1.0, 1.5, "1", None, [], {}, "]", ",", "a,b]"]),
    st.text(max_size=4), st.integers(-3, 3),
)
_ADJUSTMENT = st.fixed_dictionaries({
    "id": st.sampled_from(["a1", "a2", "a3"]), "sku": st.sampled_from(["tee", "mug"]),
    "delta": st.one_of(st.integers(-3, 3), _FOREIGN_VALUES), "reason": st.just("sale"),
    "actor": st.just("till"), "at": st.sampled_from([1_000, 2_000, True, 1_000.0]),
})
_RESOLUTION = st.fixed_dictionaries({
    "id": st.sampled_from(["r1", "r2"]), "conflict": st.sampled_from(["negative_level:x", "c"]),
    "sku": st.just("tee"), "strategy": st.sampled_from(["accept", "compensate", "bogus"]),
    "actor": st.just("boss"), "at": st.sampled_from([3_000, "3000"]),
})
_ENTRY = st.one_of(_ADJUSTMENT, _RESOLUTION, _FOREIGN_VALUES, st.lists(_FOREIGN_VALUES, max_size=3))
_STEP = st.one_of(
    st.tuples(st.just("append"), st.sampled_from(["adjustments", "resolutions", "counts"]), _ENTRY),
    st.tuples(st.just("append there"), st.sampled_from(["adjustments", "resolutions", "counts"]), _ENTRY),
    st.tuples(st.just("record"), st.sampled_from(["a1", "a4", "a5"]), st.integers(-3, 3)),
    st.tuples(st.just("delete"), st.sampled_from(["adjustments", "resolutions", "counts"]), st.integers(0, 8)),
    st.tuples(st.just("merge"), st.just(""), st.just(0)),
)


_SALE = {"id": "a1", "sku": "tee", "delta": 1, "reason": "sale", "actor": "till", "at": 1_000}


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(_STEP, max_size=25))
@example(steps=[("append", "adjustments", _SALE), ("append", "adjustments", {**_SALE, "delta": True})])
@example(steps=[("record", "a1", 1), ("merge", "", 0), ("append there", "adjustments", {**_SALE, "delta": 2}),
                ("merge", "", 0)])
@example(steps=[("record", "a4", 1), ("delete", "adjustments", 0)])
def test_a_ledger_kept_across_changes_reads_what_a_fresh_ledger_reads(steps: list[tuple[str, str, Any]]) -> None:
    """A ledger re-parses only the entries whose JSON text it has not parsed before: after any
    edits, foreign entries (booleans for numbers, floats, strings with brackets), deletions and
    merges from another replica, its whole view, issues and their positions included, is the
    view of a ledger made fresh on the same document."""
    kept = ledger(1)
    other = replica(kept, 2)
    for kind, where, what in steps:
        if kind == "append":
            kept.doc.get(where, type=Array).append(what)
        elif kind == "append there":
            other.doc.get(where, type=Array).append(what)
        elif kind == "record":
            try:
                kept.record(where, "tee", what or 1, reason="sale", actor="till", at=1_000)
            except DuplicateAdjustment:
                pass
        elif kind == "delete":
            array = kept.doc.get(where, type=Array)
            if what < len(array):
                del array[what]
        else:
            sync(kept.doc, other.doc)
        assert kept.view() == StockLedger(kept.doc, kept.location_id).view()
    sync(kept.doc, other.doc)
    assert kept.view() == StockLedger(other.doc, kept.location_id).view()


def test_an_array_tail_parses_only_what_was_appended_and_reads_everything_after_any_other_change() -> None:
    doc, other = Doc(client_id=1), Doc(client_id=2)
    array = doc.get("entries", type=Array)
    parsed: list[object] = []

    def parse(raw: object) -> object:
        parsed.append(raw)
        return raw

    tail = ArrayTail()
    array.extend([{"n": 1}, 1])
    assert tail.read(array, parse, ValueError) == ([{"n": 1}, 1], 0) and len(parsed) == 2
    array.extend(["a,]", 2])  # appended: only these two are parsed
    assert tail.read(array, parse, ValueError) == ([{"n": 1}, 1, "a,]", 2], 2) and len(parsed) == 4
    assert tail.read(array, parse, ValueError)[1] == 4 and len(parsed) == 4  # unchanged: nothing parsed
    del array[3]
    array.append(23)  # the last entry's text grew ("2" -> "23"): not an append
    assert tail.read(array, parse, ValueError) == ([{"n": 1}, 1, "a,]", 23], 0) and len(parsed) == 8
    other.apply_update(doc.get_update())
    other.get("entries", type=Array).insert(1, "x")  # another replica inserts before the end
    doc.apply_update(other.get_update(doc.get_state()))
    assert tail.read(array, parse, ValueError) == ([{"n": 1}, "x", 1, "a,]", 23], 0)
    del array[0]
    assert tail.read(array, parse, ValueError) == (["x", 1, "a,]", 23], 0)
    array.append(True)  # a refused entry is kept as its error
    outcomes, first = tail.read(array, lambda raw: _refuse_bool(raw), ValueError)
    assert first == 4 and isinstance(outcomes[4], ValueError) and outcomes[:4] == ["x", 1, "a,]", 23]


def _refuse_bool(raw: object) -> object:
    if isinstance(raw, bool):
        raise ValueError("a boolean")
    return raw
