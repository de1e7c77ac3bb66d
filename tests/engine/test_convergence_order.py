"""Orders converge, under any network, to what a plain reference model says they mean.

The reference model (``OrderModel``) keeps every transition a replica accepted,
with its kind, target, actor and time. Its meaning, from docs/semantics.md and
engine/order.py:

* the stage is the highest-ranked target among accepted stage transitions
  (placed < confirmed < preparing < ready < cancelled < completed), ``placed``
  when there is none; the payment likewise (pending < failed < authorized < paid
  < refunded);
* the trail holds every accepted transition exactly once, with its actor and time;
* a replica refuses, with TransitionRefused, exactly the moves the written rules
  forbid from the state it sees, and writes nothing then.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import initialize, multiple, precondition, rule
from syncline.engine import Order, OrderLine, TransitionRefused
from syncline.engine.order import PAYMENTS, STAGES, refusal_of

from .network import Network, UnreliableNetworkMachine, deliver_in_any_order

ORDER = "shop/order/o-1"
NOW = 7_000
LINE = OrderLine("k1", "tee", {"size": "M"}, 2, 1299, 2598)
ACTORS = ("till", "kitchen", "manager")


def clock() -> int:
    return NOW


@dataclass(frozen=True)
class Accepted:
    kind: str
    to: str
    by: str
    at: int


def furthest(names: tuple[str, ...], targets: list[str]) -> str:
    return max(targets, key=names.index, default=names[0])


class OrderConvergence(UnreliableNetworkMachine):
    """2 to 4 replicas of one order, advanced and paid offline over an unreliable network."""

    replicas = UnreliableNetworkMachine.replicas

    def __init__(self) -> None:
        super().__init__()
        self.net = Network(0, [ORDER])
        self.orders: list[Order] = []
        self.accepted: list[Accepted] = []

    @initialize(target=replicas, count=st.integers(2, 4))
    def start(self, count: int) -> Any:
        self.net = Network(count, [ORDER])
        self.orders = [Order(docs[ORDER], "o-1", clock=clock) for docs in self.net.replicas]
        with self.net.local_edit(0):
            assert self.orders[0].place(cart="c-1", location="north", currency="EUR", lines=[LINE], by="till")
        self.net.full_sync()
        self.net.in_flight.clear()
        return multiple(*range(count))

    def move(self, replica: int, kind: str, to: str, by: str, at: int) -> None:
        order = self.orders[replica]
        view = order.view()
        current = view.stage if kind == "stage" else view.payment
        before = len(view.trail)
        expected_refusal = None if to == current else refusal_of(kind, current, to)  # type: ignore[arg-type]
        with self.net.local_edit(replica):
            try:
                if kind == "stage":
                    wrote = order.advance(to, by=by, at=at)
                else:
                    wrote = order.record_payment(to, by=by, at=at)
            except TransitionRefused as refused:
                assert expected_refusal is not None, f"{kind} {current} -> {to} was refused: {refused}"
                assert (refused.current, refused.requested) == (current, to)
                assert len(order.view().trail) == before
                return
        assert expected_refusal is None, f"{kind} {current} -> {to} was allowed: {expected_refusal}"
        assert wrote == (to != current)
        if wrote:
            self.accepted.append(Accepted(kind, to, by, at))
            after = order.view()
            assert (after.stage if kind == "stage" else after.payment) == to
            assert len(after.trail) == before + 1

    @rule(replica=replicas, to=st.sampled_from(STAGES), by=st.sampled_from(ACTORS), at=st.integers(0, 10_000))
    def advance(self, replica: int, to: str, by: str, at: int) -> None:
        self.move(replica, "stage", to, by, at)

    @rule(replica=replicas, to=st.sampled_from(PAYMENTS), by=st.sampled_from(ACTORS), at=st.integers(0, 10_000))
    def pay(self, replica: int, to: str, by: str, at: int) -> None:
        self.move(replica, "payment", to, by, at)

    @precondition(lambda self: bool(self.orders))
    @rule()
    def each_replica_stays_within_the_model(self) -> None:
        """Before a full sync a replica may know less, never something nobody accepted."""
        for order in self.orders:
            view = order.view()
            assert view.stage in {"placed"} | {a.to for a in self.accepted if a.kind == "stage"}
            assert view.payment in {"pending"} | {a.to for a in self.accepted if a.kind == "payment"}

    def converge_and_check(self) -> None:
        self.net.full_sync()
        self.net.in_flight.clear()
        stage = furthest(STAGES, [a.to for a in self.accepted if a.kind == "stage"])
        payment = furthest(PAYMENTS, [a.to for a in self.accepted if a.kind == "payment"])
        first = self.orders[0].view()
        for order in self.orders:
            view = order.view()
            assert view == first
            assert (view.stage, view.payment) == (stage, payment)
            assert view.issues == ()
            assert view.lines == (LINE,) and view.total == 2598
            trail = Counter((t.kind, t.to, t.by, t.at) for t in view.trail)
            assert trail == Counter((a.kind, a.to, a.by, a.at) for a in self.accepted)
        fingerprint = self.net.fingerprint()
        self.net.deliver_all()
        assert self.net.fingerprint() == fingerprint

    def teardown(self) -> None:
        if sys.exc_info()[1] is None and self.orders:
            self.converge_and_check()


TestOrderReplicasConvergeToTheReferenceModel = OrderConvergence.TestCase


# -- scenarios, with any delivery order -----------------------------------------------------


def placed_network(count: int) -> tuple[Network, list[Order]]:
    net = Network(count, [ORDER])
    orders = [Order(docs[ORDER], "o-1", clock=clock) for docs in net.replicas]
    with net.local_edit(0):
        orders[0].place(cart="c-1", location="north", currency="EUR", lines=[LINE], by="till")
    net.full_sync()
    net.in_flight.clear()
    return net, orders


@given(data=st.data())
def test_a_completion_concurrent_with_a_cancellation_wins(data: st.DataObject) -> None:
    net, orders = placed_network(3)
    with net.local_edit(0):
        orders[0].advance("ready", by="kitchen")
        orders[0].advance("completed", by="till")
    with net.local_edit(1):
        orders[1].cancel(by="manager", note="customer called")
    for receiver in range(net.count):
        deliver_in_any_order(data, net, receiver)
    net.full_sync()
    for order in orders:
        assert order.stage() == "completed"
        cancellation = next(t for t in order.trail() if t.to == "cancelled")
        assert (cancellation.by, cancellation.note) == ("manager", "customer called")
        assert order.view() == orders[0].view()


@given(data=st.data())
def test_money_that_moved_wins_over_a_concurrent_failure(data: st.DataObject) -> None:
    net, orders = placed_network(2)
    with net.local_edit(0):
        orders[0].record_payment("failed", by="terminal")
    with net.local_edit(1):
        orders[1].record_payment("paid", by="till")
    for receiver in range(net.count):
        deliver_in_any_order(data, net, receiver)
    assert [order.payment() for order in orders] == ["paid", "paid"]
    assert orders[0].view() == orders[1].view()
