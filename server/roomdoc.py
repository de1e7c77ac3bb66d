"""A room's document: what it holds, per client clock, and the checks that keep it whole.

The document is built from the stored rows on first use (a cold room greets peers from
the rows' bytes merged, which is faster than integrating a large snapshot). Every update
applied to it is checked afterwards: the document must hold every clock the update
carries. pycrdt 0.14 integrates an update that arrived ahead of its writer's earlier one
only in part and says nothing, so callers check :meth:`UpdateShape.missing` against
:attr:`RoomDocument.clock` before applying, and a row the document does not fully hold is
remembered (:attr:`RoomDocument.uncovered`) and never folded by compaction.
"""

from __future__ import annotations

import logging

from pycrdt import Doc

from syncline.engine import InvalidStateVector, InvalidUpdate, apply_update, apply_update_state, encode_diff, protocol
from syncline.engine.structs import UpdateShape, read_trusted_update
from syncline.engine.sync import decode_state_vector, merge, update_diff, update_state_vector

from .clocks import Clocks

log = logging.getLogger("syncline.room")

EMPTY_STATE_VECTOR = b"\x00"
COLD_MERGE_MAX = 600
"""Most loaded updates (a snapshot and its tail) merged as bytes to greet a peer before the
room's document is built: Yrs merges in time that grows with the square of the count (2,000
small updates: 17 ms), so a longer uncompacted log is integrated instead."""


STATE_VECTOR_CLIENTS_MAX = 16
"""Up to this many client IDs, the clocks after an update are read from the document's state
vector (:class:`~.clocks.Clocks`: predicted, else decoded); beyond it, from the updates Yrs
reports integrating (15-20 us, whatever the count), since decoding a state vector grows
with it (20 us for 64 clients)."""


class RoomDocument:
    def __init__(self, name: str) -> None:
        self.name = name
        self._doc = Doc()
        self._clocks = Clocks()
        """Per client ID, the clock up to which the document holds its structs (kept as Yrs integrates)."""
        self.uncovered: set[int] = set()
        """Seqs of stored rows that the document does not fully hold: never folded by compaction."""
        self._loaded: list[tuple[int, bytes]] | None = None
        """Stored updates read by the room's load and not yet integrated into the document."""
        self._cold: tuple[bytes, bytes] | None = None
        """(the loaded updates merged, its state vector), to greet peers before integrating."""

    def set_loaded(self, rows: list[tuple[int, bytes]]) -> None:
        """The stored rows (snapshot first) to build the document from on its first use."""
        self._loaded = rows or None

    @property
    def clock(self) -> dict[int, int]:
        """Per client ID, the clock up to which the document holds its structs (builds it if cold)."""
        self.doc  # noqa: B018 - builds the document (and its clocks) from a cold load
        return self._clocks.clock

    @property
    def doc(self) -> Doc:
        """The room's document, with every loaded update integrated."""
        if self._loaded is not None:
            self._integrate_loaded()
        return self._doc

    def _integrate_loaded(self) -> None:
        """Integrate what the room's load read; skip (and log) what cannot be integrated.

        Rows are applied in seq order, which is an order Yrs integrates fully for every row
        this relay accepted. A log written before the relay checked that (a writer's updates
        stored out of clock order) can lose content in Yrs on the first pass; a second pass
        integrates it. The second pass runs unless the rows' merged state vector is at hand
        (a cold room that greeted a peer computed it) and the first pass already reached it;
        when the document still falls short of it, no loaded row is ever folded by compaction.
        """
        loaded, self._loaded, cold = self._loaded or [], None, self._cold
        self._cold = None
        self._apply_rows(loaded)
        self._clocks.read(self._doc.get_state())
        if not loaded:
            return
        expected = decode_state_vector(cold[1]) if cold is not None else None
        if expected is not None and not self._short_of(expected):
            return
        self._apply_rows(loaded)  # the heal: cheaper than merging the rows to find out whether it is needed
        self._clocks.read(self._doc.get_state())
        short = self._short_of(expected) if expected is not None else {}
        if short:
            log.error("the document lacks clocks its stored rows hold; compaction is off for this room",
                      extra={"doc": self.name, "reason": f"{len(short)} clients short"})
            self.uncovered.add(loaded[0][0])

    def _apply_rows(self, rows: list[tuple[int, bytes]]) -> None:
        for seq, update in rows:
            if seq in self.uncovered:
                continue  # Yrs refused it already
            try:
                apply_update(self._doc, update)
            except InvalidUpdate as exc:
                self.uncovered.add(seq)
                log.error("skipping stored update that cannot be integrated",
                          extra={"doc": self.name, "seq": seq, "reason": exc.reason})

    def _short_of(self, expected: dict[int, int]) -> dict[int, int]:
        """The clients whose clock in ``expected`` the document has not reached."""
        clock = self._clocks.clock
        return {client: end for client, end in expected.items() if clock.get(client, 0) < end}

    def apply(self, update: bytes, shape: UpdateShape) -> dict[int, int]:
        """Integrate ``update`` and return what it carries that the document still lacks
        (empty when all of it is in). Raises :class:`InvalidUpdate` if Yrs refuses it."""
        ends = shape.clocks()
        for attempt in range(2):  # Yrs integrates on a second application what it dropped on the first
            if len(self._clocks.clock) <= STATE_VECTOR_CLIENTS_MAX:
                self._clocks.advance(apply_update_state(self._doc, update), ends)
            else:
                self._apply_observed(update)
            short = self._short_of(ends)
            if not short:
                return short
            if attempt == 0:
                log.warning("update integrated only in part; applying it again",
                            extra={"doc": self.name, "reason": f"{len(short)} clients short"})
        return short

    def _apply_observed(self, update: bytes) -> None:
        """Apply ``update`` and advance the clocks by what Yrs reports it integrated (its own
        encoding of each transaction): cheaper than decoding the whole state vector of a
        document with many clients."""
        # Observed only while applying: a subscription left on a pycrdt Doc keeps it alive for
        # good (its callback holds the Doc, through Rust), so an evicted room's document would never be freed.
        captured: list[bytes] = []
        subscription = self._doc.observe(lambda event: captured.append(event.update))
        try:
            apply_update(self._doc, update)
        finally:
            self._doc.unobserve(subscription)
        for integrated in captured:
            for client, end in read_trusted_update(integrated).clocks().items():
                self._clocks.raise_to(client, end)

    def state_vector(self) -> bytes:
        """The document's state vector (from the stored bytes while it is not built yet)."""
        cold = self._cold_state()
        return cold[1] if cold is not None else self.doc.get_state()

    def _cold_state(self) -> tuple[bytes, bytes] | None:
        """The loaded updates merged and their state vector, while not yet integrated
        (None once integrated, or if a stored update does not decode: then the document
        path, which skips such rows, answers)."""
        if self._loaded is None:
            return None
        if len(self._loaded) > COLD_MERGE_MAX:
            self._integrate_loaded()  # merging many updates costs more than integrating them
            return None
        if self._cold is None:
            try:
                merged = merge([update for _, update in self._loaded])
                self._cold = (merged, update_state_vector(merged))
            except InvalidUpdate:
                self._integrate_loaded()
                return None
        return self._cold

    def answer_step1(self, state_vector: bytes) -> bytes:
        """Sync step 2 for a peer at ``state_vector``: only what it lacks."""
        try:
            cold = self._cold_state()
            if cold is not None:
                if state_vector == EMPTY_STATE_VECTOR:
                    return protocol.sync_step2(cold[0])
                return protocol.sync_step2(update_diff(cold[0], state_vector))
            return protocol.sync_step2(encode_diff(self.doc, state_vector))
        except InvalidStateVector as exc:
            raise protocol.ProtocolError(exc.reason) from exc
