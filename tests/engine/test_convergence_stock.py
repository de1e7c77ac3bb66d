"""Stock ledgers converge, under any network, to what a plain reference model says they mean.

The reference model (``LedgerModel``) keeps every adjustment and resolution body
ever written, by id. Its meaning, from DESIGN.md and engine/stock.py:

* an id counts once; when replicas wrote one id with different bodies, the body
  with the smallest canonical JSON counts (the same rule for resolutions);
* level(sku) = sum of the counted deltas of that sku;
* conflicts = skus whose level is below 0, with id
  ``"negative_level:" + sha256(canonical_json([sku, sorted ids of its negative adjustments])))[:24]``;
  a conflict is open unless a counted resolution names it;
* compensate / merge resolutions write the adjustment ``resolve:{conflict id}`` with
  delta ``target - level`` as the resolving replica observed the level.

Stock may go below zero under concurrent sales: the model asserts that levels are
sums and conflicts derived, never that levels stay non-negative.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)
from pycrdt import Array, Doc
from syncline.engine import (
    Adjustment,
    Conflict,
    DuplicateAdjustment,
    DuplicateResolution,
    LedgerView,
    Resolution,
    StockLedger,
    UnknownConflict,
)

from .network import Network, UnreliableNetworkMachine, deliver_in_any_order

LEDGER = "shop/stock/north"
ADJUSTMENT_IDS = ("a1", "a2", "a3", "a4", "a5", "a6")
SKUS = ("tee", "mug")
REASONS = ("sale", "restock", "count")
ACTORS = ("till", "manager")
STAMPS = (None, 1_000, 2_000)
"""An explicit ``at``, or None for the replica's clock."""
RESOLUTION_IDS = (None, None, "res-x", "res-y")
NOW = 5_000

Strategy = Literal["accept", "compensate", "merge"]
Body = dict[str, Any]
"""An adjustment or resolution as stored: the ``to_json()`` shape."""


@dataclass(frozen=True)
class Decision:
    """What a resolver asks for; a retry under a known resolution id must ask the same."""

    conflict: str
    strategy: Strategy
    actor: str
    note: str | None
    level: int | None


def clock() -> int:
    return NOW


# -- the reference model ------------------------------------------------------------


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def counted(bodies: Iterable[Body]) -> dict[str, Body]:
    """Per id, the body that counts: the smallest canonical JSON among those written."""
    winners: dict[str, Body] = {}
    for body in bodies:
        current = winners.get(body["id"])
        if current is None or canonical(body) < canonical(current):
            winners[body["id"]] = body
    return winners


def conflict_id(sku: str, negative_ids: Iterable[str]) -> str:
    digest = hashlib.sha256(canonical([sku, sorted(negative_ids)]).encode()).hexdigest()
    return f"negative_level:{digest[:24]}"


@dataclass(frozen=True)
class Meaning:
    """What a set of adjustment and resolution bodies means."""

    adjustments: dict[str, Body]
    resolutions: dict[str, Body]
    levels: dict[str, int]
    conflicts: tuple[Conflict, ...]
    """Every derived conflict, open or resolved, in sku order."""

    @property
    def resolved_ids(self) -> set[str]:
        return {body["conflict"] for body in self.resolutions.values()}

    def open_conflicts(self) -> tuple[Conflict, ...]:
        return tuple(c for c in self.conflicts if c.id not in self.resolved_ids)

    def history(self) -> tuple[Adjustment | Resolution, ...]:
        """The audit trail: counted adjustments and decisions, by time, adjustments first, then id."""
        entries: list[tuple[int, int, str, Adjustment | Resolution]] = [
            (b["at"], 0, b["id"], Adjustment(**b)) for b in self.adjustments.values()
        ]
        entries += [(b["at"], 1, b["id"], Resolution(**b)) for b in self.resolutions.values()]
        return tuple(entry for *_, entry in sorted(entries, key=lambda e: e[:3]))

    def view(self) -> LedgerView:
        """The engine's view, issues aside (checked separately)."""
        return LedgerView(
            tuple(
                Adjustment(**body)
                for body in sorted(self.adjustments.values(), key=lambda b: (b["at"], b["id"]))
            ),
            tuple(
                Resolution(**body)
                for body in sorted(self.resolutions.values(), key=lambda b: (b["at"], b["id"]))
            ),
            dict(sorted(self.levels.items())),
            self.open_conflicts(),
            tuple(c for c in self.conflicts if c.id in self.resolved_ids),
            (),
        )


def meaning(adjustments: Iterable[Body], resolutions: Iterable[Body]) -> Meaning:
    winners = counted(adjustments)
    levels: dict[str, int] = {}
    for body in winners.values():
        levels[body["sku"]] = levels.get(body["sku"], 0) + body["delta"]
    conflicts = []
    for sku in sorted(levels):
        if levels[sku] < 0:
            negatives = sorted(b["id"] for b in winners.values() if b["sku"] == sku and b["delta"] < 0)
            conflicts.append(
                Conflict(conflict_id(sku, negatives), "negative_level", sku, levels[sku], tuple(negatives))
            )
    return Meaning(winners, counted(resolutions), levels, tuple(conflicts))


@dataclass
class LedgerModel:
    """Every body ever written to the ledger, on any replica."""

    adjustments: list[Body] = field(default_factory=list)
    resolutions: list[Body] = field(default_factory=list)

    def meaning(self) -> Meaning:
        return meaning(self.adjustments, self.resolutions)

    def ids_with_several_bodies(self) -> set[str]:
        bodies: dict[str, set[str]] = {}
        for body in self.adjustments:
            bodies.setdefault(body["id"], set()).add(canonical(body))
        return {adjustment_id for adjustment_id, seen in bodies.items() if len(seen) > 1}


# -- facts read from a replica's raw document --------------------------------------------


def plain(body: Mapping[str, Any]) -> Body:
    """A stored body with Yjs's floats turned back into integers."""
    return {k: int(v) if isinstance(v, float) else v for k, v in body.items()}


def raw_bodies(doc: Doc[Any], name: Literal["adjustments", "resolutions"]) -> list[Body]:
    return [plain(body) for body in doc.get(name, type=Array).to_py() or []]


def adjustment_body(
    adjustment_id: str, sku: str, delta: int, reason: str, actor: str, at: int, ref: str | None = None
) -> Body:
    body: Body = {"id": adjustment_id, "sku": sku, "delta": delta, "reason": reason, "actor": actor, "at": at}
    if ref is not None:
        body["ref"] = ref
    return body


# -- the state machine -----------------------------------------------------------------------


class LedgerConvergence(UnreliableNetworkMachine):
    """2 to 5 replicas of one location's ledger, recording and resolving over an unreliable network."""

    replicas = UnreliableNetworkMachine.replicas

    def __init__(self) -> None:
        super().__init__()
        self.net = Network(0, [LEDGER])
        self.ledgers: list[StockLedger] = []
        self.model = LedgerModel()

    @initialize(target=replicas, count=st.integers(2, 5))
    def start(self, count: int) -> Any:
        self.net = Network(count, [LEDGER])
        self.ledgers = [StockLedger(docs[LEDGER], LEDGER, clock=clock) for docs in self.net.replicas]
        return multiple(*range(count))

    # -- helpers ---------------------------------------------------------------------

    def raw(self, replica: int) -> tuple[list[Body], list[Body]]:
        doc = self.net.doc(replica, LEDGER)
        return raw_bodies(doc, "adjustments"), raw_bodies(doc, "resolutions")

    def local_meaning(self, replica: int) -> Meaning:
        return meaning(*self.raw(replica))

    def record_outcome(
        self, replica: int, body: Body, *, explicit_at: bool
    ) -> Literal["new", "same", "refused"]:
        """What recording ``body`` at a replica must do, given the bodies it holds for that id."""
        existing = self.local_meaning(replica).adjustments.get(body["id"])
        if existing is None:
            return "new"
        ignored = set() if explicit_at else {"at"}
        same = {k: v for k, v in existing.items() if k not in ignored} == {
            k: v for k, v in body.items() if k not in ignored
        }
        return "same" if same else "refused"

    def check_written(
        self,
        replica: int,
        before: tuple[list[Body], list[Body]],
        adjustments: list[Body],
        resolutions: list[Body],
    ) -> None:
        after = self.raw(replica)
        assert after[0] == [*before[0], *adjustments]
        assert after[1] == [*before[1], *resolutions]
        self.model.adjustments += adjustments
        self.model.resolutions += resolutions

    # -- edits -------------------------------------------------------------------------

    def record(self, replica: int, body: Body, *, explicit_at: bool) -> None:
        ledger = self.ledgers[replica]
        before = self.raw(replica)
        outcome = self.record_outcome(replica, body, explicit_at=explicit_at)
        event(f"record: {outcome}")
        args = (body["id"], body["sku"], body["delta"])
        kwargs: dict[str, Any] = {
            "reason": body["reason"],
            "actor": body["actor"],
            "at": body["at"] if explicit_at else None,
            "ref": body.get("ref"),
        }
        with self.net.local_edit(replica):
            if outcome == "refused":
                with pytest.raises(DuplicateAdjustment):
                    ledger.record(*args, **kwargs)
            else:
                returned = ledger.record(*args, **kwargs)
                expected = self.local_meaning(replica).adjustments[body["id"]] if outcome == "same" else body
                assert returned == Adjustment(**expected)
        self.check_written(replica, before, [body] if outcome == "new" else [], [])

    @rule(
        replica=replicas,
        adjustment_id=st.sampled_from(ADJUSTMENT_IDS),
        sku=st.sampled_from(SKUS),
        delta=st.one_of(st.integers(-5, -1), st.integers(-5, 5).filter(bool)),  # sales outnumber restocks
        reason=st.sampled_from(REASONS),
        actor=st.sampled_from(ACTORS),
        at=st.sampled_from(STAMPS),
    )
    def record_adjustment(
        self, replica: int, adjustment_id: str, sku: str, delta: int, reason: str, actor: str, at: int | None
    ) -> None:
        body = adjustment_body(adjustment_id, sku, delta, reason, actor, NOW if at is None else at)
        self.record(replica, body, explicit_at=at is not None)

    @precondition(lambda self: bool(self.model.adjustments))
    @rule(
        replica=replicas,
        pick=st.integers(0, 999),
        explicit_at=st.booleans(),
        change=st.sampled_from([None, None, "delta", "reason"]),
    )
    def record_again(self, replica: int, pick: int, explicit_at: bool, change: str | None) -> None:
        """Re-record a body some replica wrote: identical (a no-op where it is known), or altered."""
        body = dict(self.model.adjustments[pick % len(self.model.adjustments)])
        if change == "delta":
            body["delta"] = body["delta"] + 1 or 1
        elif change == "reason":
            body["reason"] = "recount"
        if not explicit_at:
            body["at"] = NOW
        self.record(replica, body, explicit_at=explicit_at)

    @rule(
        replica=replicas,
        pick=st.integers(0, 99),
        strategy=st.sampled_from(["accept", "compensate", "merge"]),
        level=st.integers(0, 5),
        actor=st.sampled_from(ACTORS),
        at=st.sampled_from(STAMPS),
        note=st.sampled_from([None, "recount"]),
        resolution_id=st.sampled_from(RESOLUTION_IDS),
    )
    def resolve(
        self,
        replica: int,
        pick: int,
        strategy: Strategy,
        level: int,
        actor: str,
        at: int | None,
        note: str | None,
        resolution_id: str | None,
    ) -> None:
        """Resolve a conflict open at this replica (or, with none open, try a stale one)."""
        local = self.local_meaning(replica)
        candidates = [c.id for c in local.open_conflicts()] or [c.id for c in local.conflicts]
        conflict_id = candidates[pick % len(candidates)] if candidates else "negative_level:none"
        decision = Decision(conflict_id, strategy, actor, note, level if strategy == "merge" else None)
        self.resolve_at(replica, decision, at, resolution_id)

    @precondition(lambda self: bool(self.model.resolutions))
    @rule(replica=replicas, pick=st.integers(0, 999), same=st.booleans())
    def resolve_again(self, replica: int, pick: int, same: bool) -> None:
        """Retry a decision some replica made, under its resolution id: the same one, or a changed one."""
        body = self.model.resolutions[pick % len(self.model.resolutions)]
        decision = Decision(
            body["conflict"], body["strategy"], body["actor"], body.get("note"), body.get("level")
        )
        if not same:
            decision = replace(decision, note="changed my mind")
        self.resolve_at(replica, decision, body["at"], body["id"])

    def resolve_at(self, replica: int, decision: Decision, at: int | None, resolution_id: str | None) -> None:
        local = self.local_meaning(replica)
        before = self.raw(replica)
        ledger = self.ledgers[replica]

        def resolve() -> Resolution:
            with self.net.local_edit(replica):
                return ledger.resolve(
                    decision.conflict,
                    decision.strategy,
                    actor=decision.actor,
                    at=at,
                    note=decision.note,
                    level=decision.level,
                    resolution_id=resolution_id,
                )

        previous = None if resolution_id is None else local.resolutions.get(resolution_id)
        if previous is not None:
            same = (
                Decision(
                    previous["conflict"],
                    previous["strategy"],
                    previous["actor"],
                    previous.get("note"),
                    previous.get("level"),
                )
                == decision
            )
            event(f"resolve: known resolution id, {'same' if same else 'different'} decision")
            if same:
                assert resolve() == Resolution(**previous)
            else:
                with pytest.raises(DuplicateResolution):
                    resolve()
            self.check_written(replica, before, [], [])
            return
        conflict = next((c for c in local.open_conflicts() if c.id == decision.conflict), None)
        if conflict is None:
            event("resolve: not open here")
            with pytest.raises(UnknownConflict):
                resolve()
            self.check_written(replica, before, [], [])
            return
        stamp = NOW if at is None else at
        adjustment = self.resolving_adjustment(conflict, decision, stamp)
        outcome = None if adjustment is None else self.record_outcome(replica, adjustment, explicit_at=True)
        event(f"resolve: {decision.strategy}, adjustment {outcome or 'none'}")
        if outcome == "refused":
            with pytest.raises(DuplicateAdjustment):
                resolve()
            self.check_written(replica, before, [], [])
            return
        returned = resolve()
        expected = Resolution(
            resolution_id or returned.id,
            conflict.id,
            conflict.sku,
            decision.strategy,
            decision.actor,
            stamp,
            decision.note,
            decision.level,
            None if adjustment is None else adjustment["id"],
        )
        assert returned == expected
        written = [adjustment] if adjustment is not None and outcome == "new" else []
        self.check_written(replica, before, written, [expected.to_json()])

    @staticmethod
    def resolving_adjustment(conflict: Conflict, decision: Decision, stamp: int) -> Body | None:
        """The adjustment a resolution writes: ``resolve:{id}``, from the level as observed to the target."""
        target = {"accept": None, "compensate": 0, "merge": decision.level}[decision.strategy]
        if target is None or target == conflict.level:
            return None
        return adjustment_body(
            f"resolve:{conflict.id}",
            conflict.sku,
            target - conflict.level,
            f"conflict-{decision.strategy}",
            decision.actor,
            stamp,
            conflict.id,
        )

    # -- the network -----------------------------------------------------------------------


    # -- properties ------------------------------------------------------------------------

    @invariant()
    def every_replica_shows_what_the_model_says_of_the_bodies_it_holds(self) -> None:
        for replica, ledger in enumerate(self.ledgers):
            if not self.net.changed_since_last_look(replica, LEDGER):
                continue
            bodies = self.raw(replica)
            for body in bodies[0]:
                assert body in self.model.adjustments, f"unknown adjustment {body}"
            for body in bodies[1]:
                assert body in self.model.resolutions, f"unknown resolution {body}"
            assert replace(ledger.view(), issues=()) == meaning(*bodies).view()

    def converge_and_check(self) -> None:
        self.net.full_sync()
        expected = self.model.meaning()
        several = self.model.ids_with_several_bodies()
        if several:
            event("an adjustment id was written with different bodies")
        if expected.open_conflicts():
            event("open conflicts after sync")
        vectors = self.net.state_vectors(LEDGER)
        assert all(vector == vectors[0] for vector in vectors), vectors
        for ledger in self.ledgers:
            view = ledger.view()
            assert replace(view, issues=()) == expected.view()
            # One issue per id written with different bodies, naming it.
            assert len(view.issues) == len(several)
            assert all(any(f"={i}]" in issue.path for issue in view.issues) for i in several)
            assert ledger.history() == expected.history()
        fingerprint = self.net.fingerprint()
        self.net.deliver_all()  # late duplicates of everything: nothing changes
        assert self.net.fingerprint() == fingerprint

    def teardown(self) -> None:
        if sys.exc_info()[1] is None and self.ledgers:  # a step failed already: report that, not this
            self.converge_and_check()


TestLedgerReplicasConvergeToTheReferenceModel = LedgerConvergence.TestCase


# -- scenarios, with any delivery order -----------------------------------------------------


def ledgers_of(net: Network) -> list[StockLedger]:
    return [StockLedger(docs[LEDGER], LEDGER, clock=clock) for docs in net.replicas]


@given(data=st.data())
def test_an_adjustment_recorded_and_delivered_several_times_counts_once(data: st.DataObject) -> None:
    net = Network(3, [LEDGER])
    ledgers = ledgers_of(net)
    for replica in (0, 1):  # the same adjustment, retried on two tills
        with net.local_edit(replica):
            ledgers[replica].record("sale-1", "tee", -2, reason="sale", actor="till", at=1_000)
            ledgers[replica].record("sale-1", "tee", -2, reason="sale", actor="till", at=1_000)
    with net.local_edit(2):
        ledgers[2].record("restock-1", "tee", 5, reason="restock", actor="warehouse", at=900)
    for receiver in range(net.count):
        deliver_in_any_order(data, net, receiver)
    assert [ledger.level("tee") for ledger in ledgers] == [3, 3, 3]
    assert ledgers[0].view() == ledgers[1].view() == ledgers[2].view()


@given(data=st.data(), recount=st.integers(0, 5))
def test_two_managers_resolving_one_oversell_offline_change_the_level_once(
    data: st.DataObject, recount: int
) -> None:
    net = Network(3, [LEDGER])
    ledgers = ledgers_of(net)
    with net.local_edit(0):
        ledgers[0].record("restock-1", "tee", 3, reason="restock", actor="warehouse", at=1_000)
    net.full_sync()
    net.in_flight.clear()
    with net.local_edit(0):
        ledgers[0].record("sale-1", "tee", -2, reason="sale", actor="till", at=2_000)
    with net.local_edit(1):
        ledgers[1].record("sale-2", "tee", -2, reason="sale", actor="till", at=2_000)
    net.full_sync()
    net.in_flight.clear()
    (conflict,) = ledgers[0].conflicts()
    assert (conflict.level, conflict.adjustments) == (-1, ("sale-1", "sale-2"))
    with net.local_edit(0):
        ledgers[0].resolve(conflict.id, "compensate", actor="manager", at=3_000)
    with net.local_edit(1):
        ledgers[1].resolve(conflict.id, "merge", level=recount, actor="manager", at=3_000)
    for receiver in range(net.count):
        deliver_in_any_order(data, net, receiver)
    # Both wrote resolve:{id}; the body with the smaller canonical JSON counts.
    compensated = adjustment_body(
        f"resolve:{conflict.id}", "tee", 1, "conflict-compensate", "manager", 3_000, conflict.id
    )
    recounted = adjustment_body(
        f"resolve:{conflict.id}", "tee", recount + 1, "conflict-merge", "manager", 3_000, conflict.id
    )
    winner = min(compensated, recounted, key=canonical)["delta"]
    for ledger in ledgers:
        assert ledger.level("tee") == -1 + winner
        assert ledger.conflicts() == ()
        assert ledger.view() == ledgers[0].view()
