"""A room: one in-memory document shared by the peers of one document name.

The write path is: validate the update, append it to the store (group commit,
durable), integrate it into the document, broadcast it to the other peers
(encoded once), acknowledge it to its sender. A peer therefore never sees an
edit that is not on disk, and a late joiner is served only what was stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from pycrdt import Doc

from syncline.engine import InvalidStateVector, InvalidUpdate, apply_update, encode_diff, validate_update

from . import protocol
from .metrics import Metrics
from .protocol import AwarenessEntry
from .store import Store, StoredResponse, StoreUnavailable

log = logging.getLogger("syncline.room")

EMPTY_UPDATE = b"\x00\x00"


class Peer(Protocol):
    """What a room needs of a connection: a non-blocking send."""

    def send(self, frame: bytes) -> None:
        """Queue ``frame``; a peer that cannot keep up drops itself, never the room."""
        ...


ChangeListener = Callable[[str, int], None]
"""Called with (room name, seq) once a write is stored and integrated into the room's document."""


class Room:
    def __init__(
        self,
        name: str,
        store: Store,
        metrics: Metrics,
        *,
        compaction_updates: int,
        on_change: ChangeListener | None = None,
    ) -> None:
        self.name = name
        self.doc = Doc()
        self.peers: set[Peer] = set()
        self.idle_since: float | None = time.monotonic()
        self._store = store
        self._metrics = metrics
        self._compaction_updates = compaction_updates
        self._tail = 0
        self._applied_seq = 0
        self._inflight = 0
        self._compacting = False
        self._awareness: dict[int, AwarenessEntry] = {}
        self._awareness_owner: dict[int, Peer] = {}
        self._on_change = on_change
        self.holds = 0
        """Writers outside the protocol (REST edits) waiting for or holding the room: not evictable."""

    async def load(self) -> None:
        """Read the latest snapshot and the log after it; skip what cannot be integrated."""
        stored = await self._store.load(self.name)
        for seq, update in ([(stored.snapshot_seq, stored.snapshot)] if stored.snapshot else []) + stored.updates:
            try:
                apply_update(self.doc, update)
            except InvalidUpdate as exc:
                log.error("skipping stored update that cannot be integrated",
                          extra={"doc": self.name, "seq": seq, "reason": exc.reason})
        self._tail = len(stored.updates)
        self._applied_seq = stored.last_seq

    @property
    def busy(self) -> bool:
        """True while a write or a compaction is under way: not safe to evict."""
        return self._inflight > 0 or self._compacting

    def touch(self) -> None:
        """Note a use by something that is not a peer (a REST request): restart the idle clock."""
        if not self.peers:
            self.idle_since = time.monotonic()

    # -- peers ---------------------------------------------------------------------

    def join(self, peer: Peer) -> None:
        """Add ``peer`` and greet it: our state vector, then everyone's awareness."""
        self.peers.add(peer)
        self.idle_since = None
        peer.send(protocol.sync_step1(self.doc.get_state()))
        snapshot = self.awareness_snapshot()
        if snapshot is not None:
            peer.send(snapshot)

    def leave(self, peer: Peer) -> None:
        self.peers.discard(peer)
        gone = [client for client, owner in self._awareness_owner.items() if owner is peer]
        if gone:
            removals = []
            for client in gone:
                entry = self._awareness.pop(client)
                del self._awareness_owner[client]
                removals.append(AwarenessEntry(client, entry.clock + 1, "null"))
            self._broadcast(protocol.awareness(protocol.encode_awareness(removals)), None)
        if not self.peers:
            self.idle_since = time.monotonic()

    # -- messages ------------------------------------------------------------------

    def answer_step1(self, state_vector: bytes) -> bytes:
        """Sync step 2 for a peer at ``state_vector``: only what it lacks."""
        try:
            return protocol.sync_step2(encode_diff(self.doc, state_vector))
        except InvalidStateVector as exc:
            raise protocol.ProtocolError(exc.reason) from exc

    async def write(
        self,
        sender: Peer | None,
        update: bytes,
        *,
        action: str | None = None,
        response: StoredResponse | None = None,
    ) -> int:
        """Store, integrate and broadcast ``update``; return its sequence number.

        ``action`` and ``response`` go to the store with the update (see
        :meth:`Store.append`). Raises :class:`InvalidUpdate` (nothing stored) or
        :class:`StoreUnavailable` (nothing stored, nothing broadcast).
        """
        validate_update(update)
        self._inflight += 1
        try:
            seq = await self._store.append(self.name, update, action=action, response=response)
        finally:
            self._inflight -= 1
        try:
            apply_update(self.doc, update)
        except InvalidUpdate as exc:
            # Decodable but not integrable (Yrs panicked): its sender is closed, nothing is
            # broadcast, and loading skips the stored row the same way.
            log.error("stored update could not be integrated", extra={"doc": self.name, "seq": seq, "reason": exc.reason})
            raise
        self._tail += 1
        self._applied_seq = max(self._applied_seq, seq)
        self._broadcast(protocol.sync_update(update), sender)
        if self._on_change is not None:
            self._on_change(self.name, seq)
        if self._tail >= self._compaction_updates and not self.busy:
            await self.compact()
        return seq

    def awareness(self, sender: Peer, payload: bytes) -> None:
        """Remember each client's latest state and relay the update to the others."""
        for entry in protocol.decode_awareness(payload):
            current = self._awareness.get(entry.client_id)
            if current is not None and not (
                entry.clock > current.clock or (entry.clock == current.clock and entry.state == "null")
            ):
                continue  # y-websocket peers echo others' states back: not news, not theirs
            if entry.state == "null":
                self._awareness.pop(entry.client_id, None)
                self._awareness_owner.pop(entry.client_id, None)
            else:
                self._awareness[entry.client_id] = entry
                # The connection that first announced a client owns it: its close removes the state.
                self._awareness_owner.setdefault(entry.client_id, sender)
        self._broadcast(protocol.awareness(payload), sender)

    def awareness_snapshot(self) -> bytes | None:
        if not self._awareness:
            return None
        return protocol.awareness(protocol.encode_awareness(list(self._awareness.values())))

    async def compact(self) -> None:
        """Fold everything applied so far into one snapshot row."""
        if self._compacting or self._inflight:
            return
        self._compacting = True
        try:
            snapshot, through, folded = self.doc.get_update(), self._applied_seq, self._tail
            if folded == 0:
                return
            await self._store.compact(self.name, snapshot, through)
            self._tail -= folded
            self._metrics.compactions.inc()
        except StoreUnavailable as exc:
            log.warning("compaction failed; the log stays as it is", extra={"doc": self.name, "error": str(exc)})
        finally:
            self._compacting = False

    def _broadcast(self, frame: bytes, sender: Peer | None) -> None:
        for peer in tuple(self.peers):
            if peer is not sender:
                peer.send(frame)
