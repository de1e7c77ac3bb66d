"""Carts converge, under any network, to what a plain reference model says they mean.

The reference model (``CartModel``) knows every operation ever written, as the
replica that wrote it intended it, and every operation any replica deleted. Its
meaning of a line's quantity is the documented one (engine/cart.py, DESIGN.md):

    max(n of the live set-ops) + sum(n of the live plain adds)
    + for each guest cart merged into the line: the guest's own rule (largest set plus
      the adds) over the union of the guest operations its live merge contributions
      carry, without those a merging replica had seen and no longer held (replaced
      on the guest) and those a live set-op absorbed

where the live operations are those written and deleted by nobody. Set-quantity,
remove and clear delete exactly the operations the acting replica had observed
on the line, and absorb every guest operation those merge contributions had seen;
the test reads that observation from the replica's raw document (a fact about its
state) and the model does the rest on its own.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    invariant,
    multiple,
    rule,
)
from pycrdt import Array, Doc, Map
from syncline.engine import Cart, CartClosed, CartLine, CartStatus, CartView, UnknownLine, state_vector
from syncline.engine.sync import decode_state_vector

from .network import Network, UnreliableNetworkMachine, deliver_in_any_order

USER = "shop/cart/user-1"
GUESTS = ("shop/cart/guest-1", "shop/cart/guest-2")
CARTS = (USER, *GUESTS)
PRODUCTS = ("tee", "mug", "cap")
ATTRIBUTES: tuple[dict[str, Any], ...] = (
    {},
    {"size": "M", "color": "red"},
    {"color": "red", "size": "M"},  # the same line as the one above: key order does not matter
    {"size": "L"},
    {"size": "L", "gift": {"wrap": True, "note": "hi"}},
    {"gift": {"note": "hi", "wrap": True}, "size": "L"},
)
EDITED = (USER, USER, USER, *GUESTS)
"""Which cart an edit goes to: mostly the user's."""
NOW = 1_700_000_000_000
"""Every replica's clock: a merge stamps the same ``merged_at`` wherever it happens."""


def clock() -> int:
    return NOW


# -- the reference model ------------------------------------------------------------


def model_line_key(product: str, attributes: Mapping[str, Any]) -> str:
    """The documented line identity: sha256 of the canonical JSON of [product, attributes], 32 hex digits."""
    text = json.dumps([product, attributes], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class ModelOp:
    line: str
    kind: Literal["add", "set", "merge"]
    n: int
    merge_key: str | None = None
    absorbed: frozenset[str] = frozenset()
    guest: str | None = None
    """merge: the guest cart; ``carried`` its op ids held, ``seen`` those received (on this line)."""
    carried: frozenset[str] = frozenset()
    seen: frozenset[str] = frozenset()
    absorbed_guest: frozenset[tuple[str, str]] = frozenset()
    """set: (guest cart, guest op id) pairs it replaced."""


def model_quantity(ops: Iterable[ModelOp], guest_ops: Mapping[str, Mapping[str, ModelOp]]) -> int:
    """A line's quantity from the operations present on it (``guest_ops``: every op of each guest cart)."""
    ops = list(ops)
    sets = [op for op in ops if op.kind == "set"]
    absorbed = frozenset().union(*(op.absorbed for op in sets))
    replaced = frozenset().union(*(op.absorbed_guest for op in sets))
    quantity = max((op.n for op in sets), default=0)
    quantity += sum(op.n for op in ops if op.kind == "add" and op.merge_key is None)
    per_merge_key: dict[str, int] = {}
    for op in ops:
        if op.merge_key is not None and op.merge_key not in absorbed:
            per_merge_key[op.merge_key] = max(per_merge_key.get(op.merge_key, 0), op.n)
    for guest in {op.guest for op in ops if op.guest is not None}:
        merges = [op for op in ops if op.guest == guest]
        counted = [
            guest_ops[guest][op_id]
            for op_id in frozenset().union(*(op.carried for op in merges))
            if (guest, op_id) not in replaced
            and not any(op_id in op.seen and op_id not in op.carried for op in merges)
        ]
        per_merge_key[guest] = max((op.n for op in counted if op.kind == "set"), default=0) + sum(
            op.n for op in counted if op.kind == "add"
        )
    return quantity + sum(per_merge_key.values())


@dataclass
class CartModel:
    """The meaning of one cart document: every op ever written, and which were deleted."""

    cart_id: str
    guest_ops: Mapping[str, Mapping[str, ModelOp]] = field(default_factory=dict)
    """Every op of the guest carts, for a user cart's merge contributions."""
    ops: dict[str, ModelOp] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    lines: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    merged_into: str | None = None

    def live(self) -> set[str]:
        return set(self.ops) - self.deleted

    def quantities(self, op_ids: Iterable[str]) -> dict[str, int]:
        by_line: dict[str, list[ModelOp]] = {}
        for op_id in op_ids:
            op = self.ops[op_id]
            by_line.setdefault(op.line, []).append(op)
        return {line: model_quantity(ops, self.guest_ops) for line, ops in by_line.items()}

    def lines_of(self, op_ids: Iterable[str], shown: Iterable[str] | None = None) -> tuple[CartLine, ...]:
        """The lines a reader shows for these ops (only lines in ``shown``, if given), in key order."""
        quantities = self.quantities(op_ids)
        keys = sorted(quantities if shown is None else set(quantities) & set(shown))
        return tuple(CartLine(key, *self.lines[key], quantities[key]) for key in keys if quantities[key] > 0)

    def view(self) -> CartView:
        status = CartStatus() if self.merged_into is None else CartStatus("merged", self.merged_into, NOW)
        return CartView(self.lines_of(self.live()), status, ())


# -- facts read from a replica's raw document --------------------------------------------


def raw_ops(doc: Doc[Any]) -> dict[str, dict[str, Any]]:
    return {op["id"]: op for op in doc.get("ops", type=Array).to_py() or []}


def raw_line_keys(doc: Doc[Any]) -> set[str]:
    return set(doc.get("lines", type=Map).keys())


def raw_merged(doc: Doc[Any]) -> bool:
    return bool(doc.get("cart", type=Map).get("status") == "merged")


def covered(op_id: str, vector: Mapping[str, Any]) -> bool:
    client, tick = op_id.split(".")  # ids are "{client:x}.{clock:x}"
    return int(vector.get(client, 0)) > int(tick, 16)


def as_model_op(raw: Mapping[str, Any], guest_ops: Mapping[str, Mapping[str, ModelOp]]) -> ModelOp:
    line = raw["l"]
    if raw["k"] == "merge":
        guest = raw["g"]
        assert all(len(entry) == 2 or entry[2] == "set" for entry in raw["o"]), raw
        carried = frozenset(entry[0] for entry in raw["o"])
        on_line = [op_id for op_id, op in guest_ops[guest].items() if op.line == line]
        seen = frozenset(op_id for op_id in on_line if covered(op_id, raw["v"]))
        return ModelOp(line, "merge", 0, guest=guest, carried=carried, seen=seen)
    replaced = frozenset(
        (guest, op_id)
        for guest, part in raw.get("ag", {}).items()
        for op_id, op in guest_ops[guest].items()
        if op.line == line and (op_id in part.get("o", ()) or covered(op_id, part["v"]))
    )
    return ModelOp(line, raw["k"], int(raw["n"]), raw.get("m"), frozenset(raw.get("a", ())), absorbed_guest=replaced)


# -- the state machine -----------------------------------------------------------------------


class CartConvergence(UnreliableNetworkMachine):
    """2 to 5 replicas of a user cart and two guest carts, editing over an unreliable network."""

    replicas = UnreliableNetworkMachine.replicas

    def __init__(self) -> None:
        super().__init__()
        self.net = Network(0, CARTS)
        self.carts: list[dict[str, Cart]] = []
        guest_ops: dict[str, dict[str, ModelOp]] = {}
        self.models = {cart_id: CartModel(cart_id, guest_ops) for cart_id in CARTS}
        guest_ops.update({guest: self.models[guest].ops for guest in GUESTS})
        self.concurrent_adds: set[str] = set()
        """User-cart adds that a set, remove or clear on their line had not seen (for statistics)."""

    @initialize(
        target=replicas,
        count=st.integers(2, 5),
        shared=st.lists(
            st.tuples(
                st.sampled_from(CARTS),
                st.sampled_from(PRODUCTS),
                st.integers(1, 5),
                st.sampled_from(ATTRIBUTES),
            ),
            max_size=4,
        ),
    )
    def start(self, count: int, shared: list[tuple[str, str, int, dict[str, Any]]]) -> Any:
        """``count`` replicas that all start from the same carts, holding the ``shared`` lines."""
        self.net = Network(count, CARTS)
        self.carts = [
            {cart_id: Cart(docs[cart_id], cart_id, clock=clock) for cart_id in CARTS}
            for docs in self.net.replicas
        ]
        for cart_id, product, quantity, attributes in shared:
            self.add_item(0, cart_id, product, quantity, attributes, None)
        self.net.full_sync()
        return multiple(*range(count))

    # -- helpers ---------------------------------------------------------------------

    def present(self, replica: int, cart_id: str) -> set[str]:
        """Op ids present at a replica; each must be an op the model knows, unchanged."""
        model = self.models[cart_id]
        ops = raw_ops(self.net.doc(replica, cart_id))
        for op_id, raw in ops.items():
            assert model.ops.get(op_id) == as_model_op(raw, model.guest_ops), f"unknown or altered op {raw}"
        return set(ops)

    def received(self, replica: int, cart_id: str, op_id: str) -> bool:
        """Whether a replica has integrated an op: its state vector covers the op's client and clock."""
        client, tick = (int(part, 16) for part in op_id.split("."))  # ids are "{client:x}.{clock:x}"
        return decode_state_vector(state_vector(self.net.doc(replica, cart_id))).get(client, 0) > tick

    def unseen_on(self, replica: int, cart_id: str, line: str, kind: str) -> set[str]:
        """Ops of ``kind`` on a line, written somewhere, that a replica has not received."""
        ops = self.models[cart_id].ops
        return {
            op_id
            for op_id, op in ops.items()
            if op.line == line and op.kind == kind and not self.received(replica, cart_id, op_id)
        }

    def observed_on(self, replica: int, cart_id: str, line: str) -> set[str]:
        model = self.models[cart_id]
        return {op_id for op_id in self.present(replica, cart_id) if model.ops[op_id].line == line}

    def written(self, replica: int, cart_id: str, before: set[str]) -> dict[str, ModelOp]:
        """The ops a local edit appended, keyed by id; ids must be new everywhere."""
        model = self.models[cart_id]
        ops = raw_ops(self.net.doc(replica, cart_id))
        new = {op_id: as_model_op(raw, model.guest_ops) for op_id, raw in ops.items() if op_id not in before}
        assert not set(new) & set(self.models[cart_id].ops), f"op id reused: {sorted(new)}"
        return new

    def replace(self, replica: int, cart_id: str, lines: Iterable[str], quantity: int) -> dict[str, ModelOp]:
        """What set/remove/clear must write: per line, the set-op replacing what was observed."""
        model = self.models[cart_id]
        expected: dict[str, ModelOp] = {}
        for line in lines:
            if cart_id == USER:
                self.concurrent_adds |= self.unseen_on(replica, cart_id, line, "add")
            observed = [model.ops[op_id] for op_id in self.observed_on(replica, cart_id, line)]
            absorbed = frozenset(
                key for op in observed for key in (*op.absorbed, op.merge_key) if key is not None
            )
            replaced = frozenset(
                pair
                for op in observed
                for pair in (*op.absorbed_guest, *((op.guest, op_id) for op_id in op.seen))
            )
            if replaced:
                event("set: absorbs guest operations")
            expected[line] = ModelOp(line, "set", quantity, None, absorbed, absorbed_guest=replaced)
        return expected

    def check_replaced(
        self, replica: int, cart_id: str, before: set[str], lines: Iterable[str], expected: dict[str, ModelOp]
    ) -> None:
        model = self.models[cart_id]
        deleted = {op_id for op_id in before if model.ops[op_id].line in set(lines)}
        new = self.written(replica, cart_id, before)
        assert sorted(new.values(), key=repr) == sorted(expected.values(), key=repr)
        assert raw_ops(self.net.doc(replica, cart_id)).keys() == (before - deleted) | set(new)
        model.deleted |= deleted
        model.ops.update(new)

    # -- edits -------------------------------------------------------------------------

    @rule(
        replica=replicas,
        cart_id=st.sampled_from(EDITED),
        product=st.sampled_from(PRODUCTS),
        quantity=st.integers(1, 5),
        attributes=st.sampled_from(ATTRIBUTES),
        known_line=st.none() | st.integers(0, 99),
    )
    def add_item(
        self,
        replica: int,
        cart_id: str,
        product: str,
        quantity: int,
        attributes: dict[str, Any],
        known_line: int | None,
    ) -> None:
        """Add to a line from the pools, or (``known_line``) to one this replica already shows."""
        model = self.models[cart_id]
        doc = self.net.doc(replica, cart_id)
        known = sorted(raw_line_keys(doc))
        if known_line is not None and known:
            product, attributes = model.lines[known[known_line % len(known)]]
        before = self.present(replica, cart_id)
        key = model_line_key(product, attributes)
        with self.net.local_edit(replica):
            if raw_merged(doc):
                with pytest.raises(CartClosed):
                    self.carts[replica][cart_id].add_item(product, quantity, attributes)
                return
            assert self.carts[replica][cart_id].add_item(product, quantity, attributes) == key
        new = self.written(replica, cart_id, before)
        assert list(new.values()) == [ModelOp(key, "add", quantity)]
        if cart_id == USER and self.unseen_on(replica, cart_id, key, "set"):
            self.concurrent_adds |= set(new)
        assert key in raw_line_keys(doc)
        model.ops.update(new)
        model.lines.setdefault(key, (product, dict(attributes)))

    @rule(
        replica=replicas,
        cart_id=st.sampled_from(EDITED),
        pick=st.integers(0, 99),
        quantity=st.integers(0, 5),
        remove=st.booleans(),
    )
    def set_quantity(self, replica: int, cart_id: str, pick: int, quantity: int, remove: bool) -> None:
        """Set a line the replica has observed (remove = set to 0 through ``remove_line``)."""
        doc = self.net.doc(replica, cart_id)
        cart = self.carts[replica][cart_id]
        quantity = 0 if remove else quantity
        known = sorted(raw_line_keys(doc))
        if not known:
            with pytest.raises(CartClosed if raw_merged(doc) else UnknownLine):
                cart.set_quantity(model_line_key("tee", {}), quantity)
            return
        key = known[pick % len(known)]
        before = self.present(replica, cart_id)
        expected = self.replace(replica, cart_id, [key], quantity)
        act = cart.remove_line if remove else lambda key: cart.set_quantity(key, quantity)
        with self.net.local_edit(replica):
            if raw_merged(doc):
                with pytest.raises(CartClosed):
                    act(key)
                return
            act(key)
        self.check_replaced(replica, cart_id, before, [key], expected)

    @rule(replica=replicas, cart_id=st.sampled_from(EDITED))
    def clear(self, replica: int, cart_id: str) -> None:
        model = self.models[cart_id]
        doc = self.net.doc(replica, cart_id)
        before = self.present(replica, cart_id)
        lines = {model.ops[op_id].line for op_id in before}
        expected = self.replace(replica, cart_id, lines, 0)
        with self.net.local_edit(replica):
            if raw_merged(doc):
                with pytest.raises(CartClosed):
                    self.carts[replica][cart_id].clear()
                return
            self.carts[replica][cart_id].clear()
        self.check_replaced(replica, cart_id, before, lines, expected)

    @rule(replica=replicas, guest=st.sampled_from(GUESTS))
    def merge_guest(self, replica: int, guest: str) -> None:
        """Merge a guest cart into the user cart at one replica (a replay if it saw a merge)."""
        guest_doc = self.net.doc(replica, guest)
        guest_model, user_model = self.models[guest], self.models[USER]
        # What this replica shows of the guest cart: its ops present, on lines whose metadata arrived.
        guest_lines = guest_model.lines_of(self.present(replica, guest), raw_line_keys(guest_doc))
        before = self.present(replica, USER)
        replay = raw_merged(guest_doc)
        # What each contribution carries: the guest ops this replica holds on the line, and
        # has received there; the engine writes one for a line unless it tells nothing new.
        guest_present = self.present(replica, guest)

        def contribution(line: str) -> ModelOp:
            on_line = {op_id for op_id, op in guest_model.ops.items() if op.line == line}
            seen = frozenset(op_id for op_id in on_line if self.received(replica, guest, op_id))
            return ModelOp(line, "merge", 0, guest=guest, carried=frozenset(on_line & guest_present), seen=seen)

        contributable = {key: contribution(key) for key in raw_line_keys(guest_doc)}
        with self.net.local_edit(replica):
            result = self.carts[replica][guest].merge_into(self.carts[replica][USER])
        assert (result.replayed, result.lines) == (replay, guest_lines)
        new = self.written(replica, USER, before)
        event(
            ("merge: replayed" if replay else "merge: first here")
            + (", contributes lines" if new else ", contributes nothing")
        )
        assert all(op == contributable.get(op.line) for op in new.values()), new
        assert len({op.line for op in new.values()}) == len(new)
        assert raw_merged(guest_doc)
        if not replay:
            assert {line.key for line in guest_lines} <= raw_line_keys(self.net.doc(replica, USER))
        user_model.ops.update(new)
        for key in {op.line for op in new.values()}:  # a contribution may bring a line the guest shows at 0
            user_model.lines.setdefault(key, guest_model.lines[key])
        guest_model.merged_into = USER

    # -- the network -----------------------------------------------------------------------


    # -- properties ------------------------------------------------------------------------

    @invariant()
    def every_replica_shows_what_the_model_says_of_the_ops_it_holds(self) -> None:
        for replica in range(self.net.count):
            for cart_id in CARTS:
                if not self.net.changed_since_last_look(replica, cart_id):
                    continue
                shown = raw_line_keys(self.net.doc(replica, cart_id))
                expected = self.models[cart_id].lines_of(self.present(replica, cart_id), shown)
                assert self.carts[replica][cart_id].view().lines == expected

    def converge_and_check(self) -> None:
        self.net.full_sync()
        self.note_what_converged()
        for cart_id in CARTS:
            model = self.models[cart_id]
            vectors = self.net.state_vectors(cart_id)
            assert all(vector == vectors[0] for vector in vectors), vectors
            for replica in range(self.net.count):
                assert self.present(replica, cart_id) == model.live()
                assert self.carts[replica][cart_id].view() == model.view()
        fingerprint = self.net.fingerprint()
        self.net.deliver_all()  # late duplicates of everything: nothing changes
        assert self.net.fingerprint() == fingerprint

    def note_what_converged(self) -> None:
        model = self.models[USER]
        live = model.live()
        if live & self.concurrent_adds:
            event("an add survived a set or remove that had not seen it")
        for line in {model.ops[op_id].line for op_id in live}:
            ops = [model.ops[op_id] for op_id in live if model.ops[op_id].line == line]
            merge_keys = [op.guest for op in ops if op.guest]
            if len(merge_keys) > len(set(merge_keys)):
                event("one guest merged into a line by several replicas")
            if any(op.absorbed_guest for op in ops):
                event("a guest contribution absorbed by a set")

    def teardown(self) -> None:
        if sys.exc_info()[1] is None and self.carts:  # a step failed already: report that, not this
            self.converge_and_check()


TestCartReplicasConvergeToTheReferenceModel = CartConvergence.TestCase


# -- the scenarios the issue names, with any delivery order ---------------------------------


def carts_of(net: Network, cart_id: str) -> list[Cart]:
    return [Cart(docs[cart_id], cart_id, clock=clock) for docs in net.replicas]


@given(data=st.data())
def test_offline_adds_of_two_and_three_to_one_line_show_five_in_any_delivery_order(
    data: st.DataObject,
) -> None:
    net = Network(3, [USER])
    till, phone, observer = carts_of(net, USER)
    with net.local_edit(0):
        key = till.add_item("tee", 2, {"size": "M", "color": "red"})
    with net.local_edit(1):
        assert phone.add_item("tee", 3, {"color": "red", "size": "M"}) == key
    for replica in range(3):
        deliver_in_any_order(data, net, replica)
    assert [cart.quantity(key) for cart in (till, phone, observer)] == [5, 5, 5]
    assert till.view() == phone.view() == observer.view()


@given(data=st.data(), added=st.integers(1, 5))
def test_a_removal_does_not_cancel_a_concurrent_add_it_had_not_seen(data: st.DataObject, added: int) -> None:
    net = Network(3, [USER])
    till, phone, observer = carts_of(net, USER)
    with net.local_edit(0):
        key = till.add_item("mug", 2)
    net.full_sync()
    net.in_flight.clear()
    with net.local_edit(0):
        till.remove_line(key)
    with net.local_edit(1):
        phone.add_item("mug", added)
    for replica in range(3):
        deliver_in_any_order(data, net, replica)
    assert [cart.quantity(key) for cart in (till, phone, observer)] == [added] * 3


@given(data=st.data())
def test_a_guest_merge_replayed_on_two_replicas_at_once_counts_once(data: st.DataObject) -> None:
    guest_id = GUESTS[0]
    net = Network(3, [USER, guest_id])
    users, guests = carts_of(net, USER), carts_of(net, guest_id)
    with net.local_edit(0):
        key = users[0].add_item("tee", 1, {"size": "L"})
        guests[0].add_item("tee", 2, {"size": "L"})
        cap = guests[0].add_item("cap", 4)
    net.full_sync()
    net.in_flight.clear()
    for replica in (0, 1):  # both replicas merge the same guest cart, offline
        with net.local_edit(replica):
            assert not guests[replica].merge_into(users[replica]).replayed
        with net.local_edit(replica):
            assert guests[replica].merge_into(users[replica]).replayed
    for replica in range(3):
        deliver_in_any_order(data, net, replica)
    for user, guest in zip(users, guests, strict=True):
        assert (user.quantity(key), user.quantity(cap)) == (3, 4)
        assert guest.status() == CartStatus("merged", USER, NOW)
        assert user.view() == users[0].view()
