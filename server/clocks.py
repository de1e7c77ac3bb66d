"""A document's clocks, read from the state vector Yrs encodes, mostly without decoding it.

After each write the relay reads the document's state vector to learn what it now holds
(and so whether the write was integrated whole). Decoding one in Python costs about 10 us for
five clients, on every write. But a write that only advances clients the document already
had leaves Yrs encoding the same clients in the same order, each clock where it was:
:meth:`Clocks.advance` splices the new clocks into the last state vector at the byte spans
of the old ones, and when the document's state vector equals that byte for byte, the
document holds exactly those clocks and nothing is decoded. Any difference (a new client, a
write integrated in part, an order Yrs changed) falls back to decoding, so the clocks are
always exactly the document's.
"""

from __future__ import annotations

from syncline.engine.protocol import write_varuint
from syncline.engine.sync import index_state_vector

Change = tuple[int, int, bytes, int, int]
"""One advanced clock: where the old one is encoded (start, stop), the new one encoded, the
client and its new clock."""


class Clocks:
    """Per client ID, the clock up to which a document holds its structs."""

    __slots__ = ("_spans", "_state", "clock")

    def __init__(self) -> None:
        self.clock: dict[int, int] = {}
        self._state: bytes | None = b"\x00"
        """The state vector ``clock`` was last read from or checked against; None when the
        clocks moved without one (:meth:`raise_to`), so that the next write decodes."""
        self._spans: dict[int, tuple[int, int]] = {}
        """Where each client's clock is encoded in ``_state``, in the order of the entries."""

    def read(self, state: bytes) -> None:
        """Take the clocks of the state vector ``state`` (decoded)."""
        self.clock, self._spans = index_state_vector(state)
        self._state = state

    def advance(self, state: bytes, ends: dict[int, int]) -> None:
        """Take the clocks of ``state``, the document's state vector after integrating a write
        that carries the clocks ``ends``: predicted when it is the last one advanced by ``ends``."""
        last, changes = self._state, self._changes(ends)
        if last is None or changes is None or _spliced(last, changes) != state:
            self.read(state)
            return
        self._state = state
        for _, _, _, client, end in changes:
            self.clock[client] = end
        if any(len(encoded) != stop - start for start, stop, encoded, _, _ in changes):
            self._spans = _shifted(self._spans, changes)

    def raise_to(self, client: int, end: int) -> None:
        """The document now holds ``client``'s structs up to ``end`` (learnt without its state vector)."""
        if self.clock.get(client, 0) < end:
            self.clock[client] = end
            self._state = None

    def _changes(self, ends: dict[int, int]) -> list[Change] | None:
        """The clocks in ``ends`` beyond the document's, in the order of their entries; None if
        one is a client the document did not have (its entry is new: nothing to predict from)."""
        clock, spans = self.clock, self._spans
        changes = []
        for client, end in ends.items():
            if end > clock.get(client, 0):
                span = spans.get(client)
                if span is None:
                    return None
                changes.append((span[0], span[1], write_varuint(end), client, end))
        changes.sort()
        return changes


def _spliced(state: bytes, changes: list[Change]) -> bytes:
    """``state`` with the clocks of ``changes`` put in place of the old ones."""
    pieces, at = [], 0
    for start, stop, encoded, _, _ in changes:
        pieces += (state[at:start], encoded)
        at = stop
    pieces.append(state[at:])
    return b"".join(pieces)


def _shifted(spans: dict[int, tuple[int, int]], changes: list[Change]) -> dict[int, tuple[int, int]]:
    """``spans`` after the clocks in ``changes`` were re-encoded, some in more bytes."""
    grown = {client: len(encoded) - (stop - start) for start, stop, encoded, client, _ in changes}
    moved, shift = {}, 0
    for client, (start, stop) in spans.items():
        start += shift
        shift += grown.get(client, 0)
        moved[client] = (start, stop + shift)
    return moved
