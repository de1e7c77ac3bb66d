"""A simulated network of replicas for the convergence tests.

Every replica holds one pycrdt ``Doc`` per document name, with a fixed client id.
A local edit is wrapped in :meth:`Network.local_edit`: the update it produced,
``encode_diff(doc, state_vector_before)``, is queued for every other replica.
Messages stay in flight per (sender, receiver) link until a test delivers them
(in any order, so reordering is the default), delivers them twice, merges several
into one (``pycrdt.merge_updates``) or drops them. A message nobody delivers is a
delay. :meth:`Network.full_sync` then exchanges state vectors between every pair
until nothing changes, as reconnecting peers would.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, precondition, rule
from pycrdt import Doc, merge_updates
from syncline.engine import apply_update, encode_diff, state_vector
from syncline.engine.sync import decode_state_vector

Link = tuple[int, int]
"""(sender, receiver) replica indices."""

MAX_SYNC_ROUNDS = 8

NETWORK_ACTIONS = (
    "deliver",
    "deliver",
    "deliver",
    "deliver twice",
    "deliver merged",
    "deliver merged",
    "drop",
)
"""What :func:`step` may do with in-flight messages, repeated to weigh the draw."""


@dataclass(frozen=True)
class Message:
    doc: str
    update: bytes


class Network:
    """``count`` replicas of the documents ``names``; replica ``i`` has client id ``first_client_id + i``."""

    def __init__(self, count: int, names: Sequence[str], *, first_client_id: int = 101) -> None:
        self.names = tuple(names)
        self.replicas: list[dict[str, Doc[Any]]] = [
            {name: Doc(client_id=first_client_id + index) for name in self.names} for index in range(count)
        ]
        self.in_flight: dict[Link, list[Message]] = {}
        self._looked_at: dict[tuple[int, str], bytes] = {}

    @property
    def count(self) -> int:
        return len(self.replicas)

    def doc(self, replica: int, name: str) -> Doc[Any]:
        return self.replicas[replica][name]

    # -- local edits -------------------------------------------------------------

    @contextmanager
    def local_edit(self, replica: int) -> Iterator[None]:
        """Queue what the wrapped edit changed, document by document, for every other replica.

        An edit that raised still sends whatever it wrote before raising (nothing, when
        the engine validates first, as it should).
        """
        docs = self.replicas[replica]
        before = {name: state_vector(doc) for name, doc in docs.items()}
        unchanged = {name: encode_diff(doc, before[name]) for name, doc in docs.items()}
        try:
            yield
        finally:
            for name, doc in docs.items():
                update = encode_diff(doc, before[name])
                if update != unchanged[name]:  # new items, or deletions (which keep the state vector)
                    self.broadcast(replica, Message(name, update))

    def broadcast(self, sender: int, message: Message) -> None:
        for receiver in range(self.count):
            if receiver != sender:
                self.in_flight.setdefault((sender, receiver), []).append(message)

    # -- the unreliable network ----------------------------------------------------

    def links(self) -> list[Link]:
        """Links with at least one message in flight, in a stable order."""
        return sorted(link for link, queue in self.in_flight.items() if queue)

    def has_in_flight(self) -> bool:
        return bool(self.links())

    def pick(self, link_pick: int, message_pick: int) -> tuple[Link, int]:
        """A link with messages in flight and a message index on it, from two arbitrary integers."""
        links = self.links()
        link = links[link_pick % len(links)]
        return link, message_pick % len(self.in_flight[link])

    def deliver(self, link: Link, index: int, *, keep: bool = False) -> None:
        """Apply one message at its receiver; ``keep`` leaves it in flight to arrive again later."""
        queue = self.in_flight[link]
        message = queue[index] if keep else queue.pop(index)
        apply_update(self.doc(link[1], message.doc), message.update)

    def drop(self, link: Link, index: int) -> None:
        del self.in_flight[link][index]

    def deliver_merged(self, link: Link, indices: Sequence[int]) -> int:
        """Merge the chosen messages of one document (the first chosen one's) into one update and apply it.

        Returns how many messages were merged.
        """
        queue = self.in_flight[link]
        doc = queue[indices[0]].doc
        chosen = sorted({i for i in indices if queue[i].doc == doc})
        update = merge_updates(*(queue[i].update for i in chosen))
        for i in reversed(chosen):
            del queue[i]
        apply_update(self.doc(link[1], doc), update)
        return len(chosen)

    def deliver_all(self) -> None:
        """Deliver everything still in flight, in queue order."""
        for link in self.links():
            while self.in_flight[link]:
                self.deliver(link, 0)

    # -- reconnecting ----------------------------------------------------------------

    def sync_pair(self, sender: int, receiver: int) -> None:
        """One half of a sync handshake: the receiver sends its state vector, gets the diff."""
        for name in self.names:
            target = self.doc(receiver, name)
            apply_update(target, encode_diff(self.doc(sender, name), state_vector(target)))

    def full_sync(self) -> int:
        """Exchange state vectors between every ordered pair until nothing changes; return the rounds."""
        for rounds in range(1, MAX_SYNC_ROUNDS + 1):
            before = self.fingerprint()
            for sender in range(self.count):
                for receiver in range(self.count):
                    if sender != receiver:
                        self.sync_pair(sender, receiver)
            if self.fingerprint() == before:
                return rounds
        raise AssertionError(f"replicas still changing after {MAX_SYNC_ROUNDS} full sync rounds")

    def fingerprint(self) -> list[dict[str, bytes]]:
        """Every replica's full encoded state (items and deletions), to detect change on one replica."""
        return [{name: doc.get_update() for name, doc in docs.items()} for docs in self.replicas]

    def changed_since_last_look(self, replica: int, name: str) -> bool:
        """Whether a document changed (new items or deletions) since this was last asked of it."""
        doc = self.doc(replica, name)
        version = doc.get_update()
        changed = self._looked_at.get((replica, name)) != version
        self._looked_at[(replica, name)] = version
        return changed

    def state_vectors(self, name: str) -> list[dict[int, int]]:
        """Each replica's decoded state vector of document ``name``."""
        return [decode_state_vector(state_vector(docs[name])) for docs in self.replicas]


def step(net: Network, action: str, link_pick: int, picks: Sequence[int]) -> None:
    """One unreliable-network step on a link with messages in flight (see :data:`NETWORK_ACTIONS`)."""
    link, index = net.pick(link_pick, picks[0])
    if action == "deliver":
        net.deliver(link, index)
    elif action == "deliver twice":
        net.deliver(link, index, keep=True)
    elif action == "deliver merged":
        size = len(net.in_flight[link])
        net.deliver_merged(link, [pick % size for pick in picks])
    elif action == "drop":
        net.drop(link, index)
    else:
        raise ValueError(f"unknown network action {action!r}")


def deliver_in_any_order(data: st.DataObject, net: Network, receiver: int) -> None:
    """Deliver everything in flight to ``receiver`` in a drawn order, some messages more than once,
    consecutive ones sometimes merged into one update."""
    links = [link for link in net.links() if link[1] == receiver]
    messages = [message for link in links for message in net.in_flight[link]]
    for link in links:
        net.in_flight[link].clear()
    extra = data.draw(st.lists(st.sampled_from(range(len(messages))), max_size=4), label="duplicates")
    order = data.draw(st.permutations([*range(len(messages)), *extra]), label="order")
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=len(order), max_size=len(order)), label="batches")
    position = 0
    for size in sizes:
        batch = [messages[i] for i in order[position : position + size]]
        position += size
        for name in sorted({message.doc for message in batch}):
            updates = [message.update for message in batch if message.doc == name]
            apply_update(net.doc(receiver, name), merge_updates(*updates) if len(updates) > 1 else updates[0])


class UnreliableNetworkMachine(RuleBasedStateMachine):
    """Network rules shared by the convergence state machines.

    Subclasses set ``self.net`` and define :meth:`converge_and_check`; their
    ``initialize`` rule adds replica indices to :attr:`replicas`.
    """

    replicas: Bundle[int] = Bundle("replicas")
    net: Network

    def converge_and_check(self) -> None:
        raise NotImplementedError

    @precondition(lambda self: self.net.has_in_flight())
    @rule(
        action=st.sampled_from(NETWORK_ACTIONS),
        link=st.integers(0, 99),
        indices=st.lists(st.integers(0, 99), min_size=2, max_size=4),
    )
    def network(self, action: str, link: int, indices: list[int]) -> None:
        """Deliver a message (or deliver it and keep it for a second delivery, or drop it),
        or merge several messages into one update and deliver that."""
        step(self.net, action, link, indices)

    @rule(sender=replicas, receiver=replicas, everyone=st.sampled_from([False, False, False, True]))
    def reconnect(self, sender: int, receiver: int, everyone: bool) -> None:
        """A receiver catches up with a sender; or everyone syncs and the result is checked."""
        if everyone:
            self.converge_and_check()
        elif sender != receiver:
            self.net.sync_pair(sender, receiver)
