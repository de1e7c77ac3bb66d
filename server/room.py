"""A room: one in-memory document shared by the peers of one document name.

The write path is: read the update strictly (:func:`~syncline.engine.read_update`),
refuse it if it depends on clocks the document lacks (:class:`UpdateOutOfOrder`: Yrs
would integrate it only in part, silently) or writes structs of a client ID bound to
another writer (:class:`ClientIdTaken`), append it to the store (group commit,
durable; the client IDs it is the first to write are bound to its writer in that same
commit), integrate it into the document and check that every clock it carries is
now in the document, broadcast it to the other peers (encoded once), acknowledge it
to its sender. A peer therefore never sees an edit that is not on disk, a late joiner
is served only what was stored, and nothing is acknowledged that the document lacks.

In a cluster (``--fanout``), the node that accepted a write also publishes it after
broadcasting it, before the acknowledgement; the other nodes apply it with
:meth:`Room.apply_remote` (no store write) and forward it to their peers. Each room
remembers the seq through which it has read the store (``synced_through``) so that a
published update it already read is not forwarded twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from pycrdt import Doc, TransactionEvent, merge_updates

from syncline.engine import InvalidUpdate, validate_update
from syncline.engine import protocol
from syncline.engine.protocol import AwarenessEntry
from syncline.engine.structs import UpdateShape, read_trusted_update

from .awareness import AwarenessLimits, RoomAwareness, awareness_frames
from .errors import ClientIdTaken, UpdateNotIntegrated, UpdateOutOfOrder
from .fanout import Fanout, FanoutUnavailable
from .metrics import Metrics
from .roomdoc import RoomDocument
from .store import Binding, ClientsBound, DocumentLog, Receipt, StoredDoc, StoreUnavailable

log = logging.getLogger("syncline.room")

EMPTY_UPDATE = b"\x00\x00"
INTERNAL_WRITER = "relay"
"""The writer identity of in-process edits (the REST adapter): client IDs it writes are bound to it."""
REMOTE_PENDING_MAX = 10_000
"""Most updates from other nodes held while they wait for updates they depend on."""


class Peer(Protocol):
    """What a room needs of a connection: a non-blocking send."""

    def send(self, frame: bytes) -> None:
        """Queue ``frame``; a peer that cannot keep up drops itself, never the room."""
        ...


class Waiter(Protocol):
    """A peer holding updates that wait for clocks the room lacks."""

    def room_advanced(self) -> None:
        """The room integrated something new: retry what waits (soon, not in this call)."""
        ...


ChangeListener = Callable[[str, int], None]
"""Called with (room name, seq) once a write is stored and integrated into the room's document."""


class Room:
    def __init__(
        self,
        name: str,
        store: DocumentLog,
        metrics: Metrics,
        *,
        compaction_updates: int,
        on_change: ChangeListener | None = None,
        fanout: Fanout | None = None,
        awareness_limits: AwarenessLimits | None = None,
    ) -> None:
        self.name = name
        self._document = RoomDocument(name)
        self._owners: dict[int, str | None] = {}
        """Writer bound to each client ID seen (None: known to have none), as the store records it."""
        self._compacted_through = 0
        self._waiting: set[Waiter] = set()
        """Peers holding updates that wait for clocks the room lacks; told when it gains any."""
        self._remote_pending: list[tuple[int, bytes]] = []
        """Updates of other nodes that arrived ahead of an update they depend on (cluster only)."""
        self.peers: set[Peer] = set()
        self.idle_since: float | None = time.monotonic()
        self._store = store
        self._metrics = metrics
        self._compaction_updates = compaction_updates
        self._tail = 0
        self._applied_seq = 0
        self._synced_through = 0
        """Every stored row of this document with a seq up to this one is in ``doc``."""
        self._inflight = 0
        self._unsure = False
        """An append failed: it may have committed all the same, so read the store before the next write."""
        self._compacting = False
        self._awareness = RoomAwareness(awareness_limits)
        """Each client's state and owner: a local peer, or the id of the node whose client it is (a str)."""
        self._on_change = on_change
        self._fanout = fanout if fanout is not None and fanout.shared else None
        self.holds = 0
        """Writers outside the protocol (REST edits) waiting for or holding the room: not evictable."""

    async def load(self) -> None:
        """Read the latest snapshot and the log after it.

        The updates are integrated into the document on its first use, not here: a peer
        that opens a cold room is greeted and sent the stored state straight from the
        bytes (:meth:`join`, :meth:`answer_step1`), which is several times faster than
        integrating a large snapshot first.
        """
        stored = await self._store.load(self.name)
        loaded = ([(stored.snapshot_seq, stored.snapshot)] if stored.snapshot else []) + stored.updates
        self._document.set_loaded(loaded)
        self._tail = len(stored.updates)
        self._applied_seq = self._synced_through = stored.last_seq

    @property
    def doc(self) -> Doc:
        """The room's document, with every loaded update integrated."""
        return self._document.doc

    def state_vector(self) -> bytes:
        """The room's state vector (from the stored bytes while the document is not built yet)."""
        return self._document.state_vector()

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
        peer.send(protocol.sync_step1(self.state_vector()))
        for frame in self.awareness_frames():
            peer.send(frame)

    def wait_for_clocks(self, waiter: Waiter, waiting: bool) -> None:
        """Start (or stop) telling ``waiter`` each time the room integrates something new."""
        if waiting:
            self._waiting.add(waiter)
        else:
            self._waiting.discard(waiter)

    def _advanced(self) -> None:
        for waiter in tuple(self._waiting):
            waiter.room_advanced()

    def leave(self, peer: Peer) -> None:
        self.peers.discard(peer)
        self._waiting.discard(peer)  # type: ignore[arg-type]
        removals = self._awareness.drop_owner(peer)
        if removals:
            for frame in awareness_frames(removals, self._awareness.limits.frame_bytes):
                self._broadcast(frame, None)
            if self._fanout is not None:
                self._fanout.publish_awareness(self.name, protocol.encode_awareness(removals))
        if not self.peers:
            self.idle_since = time.monotonic()

    # -- messages ------------------------------------------------------------------

    def answer_step1(self, state_vector: bytes) -> bytes:
        """Sync step 2 for a peer at ``state_vector``: only what it lacks."""
        return self._document.answer_step1(state_vector)

    async def write(
        self,
        sender: Peer | None,
        update: bytes,
        *,
        writer: str = INTERNAL_WRITER,
        action: str | None = None,
        receipt: Receipt | None = None,
    ) -> int:
        """Store, integrate and broadcast ``update`` written by ``writer``; return its sequence number.

        ``writer`` is the identity client IDs are bound to (:attr:`Grant.writer`).
        ``action`` and ``receipt`` go to the store with the update (see
        :meth:`Store.append`). Raises, with nothing stored: :class:`InvalidUpdate`,
        :class:`UpdateOutOfOrder` (it depends on clocks the room lacks: send them first),
        :class:`ClientIdTaken` or :class:`StoreUnavailable` (nothing broadcast either; an
        append that lost its answer during COMMIT may be stored all the same, so the room
        reads the store again before its next write and sends its peers what it finds).
        Raises after storing: :class:`UpdateNotIntegrated` (kept out of compaction, not
        broadcast). In a cluster whose fan-out is down the write is stored, broadcast here
        and acknowledged all the same: the store is the source of truth, and the other
        nodes catch the room up from it (by polling while the fan-out is down, and when
        this node can publish again).
        """
        shape = validate_update(update)
        fanout = self._fanout
        self._inflight += 1
        try:
            if self._unsure:
                await self._settle()
            binding = self._check_writer(shape, writer)
            missing = shape.missing(self._document.clock)
            if missing:
                raise UpdateOutOfOrder(missing)
            try:
                seq = await self._store.append(self.name, update, action=action, receipt=receipt, binding=binding)
            except StoreUnavailable:
                self._unsure = True
                raise
            except ClientsBound as exc:
                self._owners.update(exc.owners)
                raise ClientIdTaken(min(client for client, who in exc.owners.items() if who != writer)) from None
            if binding is not None:
                for client in binding.claim:
                    self._owners[client] = writer
        finally:
            self._inflight -= 1
        try:
            short = self._document.apply(update, shape)
        except InvalidUpdate as exc:
            # Decodable but not integrable (Yrs panicked): its sender is closed, nothing is
            # broadcast, and loading skips the stored row the same way.
            self._document.uncovered.add(seq)
            log.error("stored update could not be integrated", extra={"doc": self.name, "seq": seq, "reason": exc.reason})
            raise
        if short:
            self._document.uncovered.add(seq)
            log.error("stored update did not integrate fully; not acknowledged, kept out of compaction",
                      extra={"doc": self.name, "seq": seq, "reason": f"{len(short)} clients short"})
            raise UpdateNotIntegrated(seq, short)
        self._tail += 1
        self._applied_seq = max(self._applied_seq, seq)
        self._broadcast(protocol.sync_update(update), sender)
        self._advanced()
        if self._on_change is not None:
            self._on_change(self.name, seq)
        if fanout is not None:
            try:
                await fanout.publish_update(self.name, seq, update)
            except FanoutUnavailable:
                pass  # stored: the fan-out marked the room for the other nodes to re-read
        if self._tail >= self._compaction_updates and not self.busy:
            await self.compact()
        return seq

    async def _settle(self) -> None:
        """After an append whose answer was lost: take in what the store holds that this room
        lacks (that append, if it committed), and pass it on to the other nodes, which were
        not told either. Raises :class:`StoreUnavailable` while the store is still away."""
        found = await self.resync()
        self._unsure = False
        if self._fanout is not None:
            for seq, update in found:
                try:
                    await self._fanout.publish_update(self.name, seq, update)
                except FanoutUnavailable:
                    break  # the fan-out marked the room for the other nodes to re-read

    def _check_writer(self, shape: UpdateShape, writer: str) -> Binding | None:
        """Refuse structs of a client ID known to be bound to another writer; return the
        :class:`Binding` the append must carry for the client IDs the room knows no owner of.

        A client ID is bound, durably and for every node, to the first writer that writes a
        clock range of it the room did not have: in the transaction that stores that write,
        so a writer's first update costs one commit, not two. Structs of a bound client ID
        from another writer are refused even when the room already holds their range: that
        is how a client whose ID collides with another's learns of it, instead of being ignored.
        """
        owners = self._owners
        for client in shape.runs:
            owner = owners.get(client)
            if owner is not None and owner != writer:
                raise ClientIdTaken(client)
        beyond = shape.writes_beyond(self._document.clock)
        claim = tuple(client for client in beyond if owners.get(client) is None)
        check = tuple(client for client in shape.runs if client not in owners and client not in beyond)
        return Binding(writer, claim, check) if claim or check else None

    def awareness(self, sender: Peer, payload: bytes) -> None:
        """Remember each client's latest state and relay the update to the others.

        Raises :class:`AwarenessOverShare` (nothing remembered or relayed) if ``sender`` would
        hold more states than its share; states past the room's bound are dropped (see
        :mod:`.awareness`).
        """
        remembered = self._awareness.remember(sender, protocol.decode_awareness(payload))
        if remembered.dropped:
            self._metrics.rejected.labels("awareness_room_full").inc(remembered.dropped)
            if remembered.kept:
                self._broadcast(protocol.awareness(protocol.encode_awareness(remembered.kept)), sender)
        else:
            self._broadcast(protocol.awareness(payload), sender)
        if remembered.news and self._fanout is not None:
            # Only news crosses nodes: forwarding echoes would bounce between nodes for ever.
            self._fanout.publish_awareness(self.name, protocol.encode_awareness(remembered.news))

    # -- other nodes (cluster only) ------------------------------------------------

    def apply_remote(self, seq: int, update: bytes) -> None:
        """Another node stored ``update`` as ``seq``: integrate and forward it (never store it).

        One that arrives ahead of an update it depends on waits for it here, so Yrs is never
        handed an update it would integrate only in part."""
        if seq <= self._synced_through:
            return  # already read from the store (a resync overtook the message)
        self._remote_pending.append((seq, update))
        if len(self._remote_pending) > REMOTE_PENDING_MAX:
            dropped = self._remote_pending.pop(0)
            log.error("too many updates from other nodes waiting; dropping the oldest until the next catch-up",
                      extra={"doc": self.name, "seq": dropped[0]})
        progress = True
        while progress and self._remote_pending:
            progress = False
            for index, (pending_seq, pending) in enumerate(self._remote_pending):
                try:
                    shape = read_trusted_update(pending)
                except InvalidUpdate as exc:
                    del self._remote_pending[index]
                    log.error("published update could not be read", extra={"doc": self.name, "seq": pending_seq,
                                                                            "reason": exc.reason})
                    progress = True
                    break
                if shape.missing(self._document.clock):
                    continue
                del self._remote_pending[index]
                self._apply_remote_now(pending_seq, pending, shape)
                progress = True
                break

    def _apply_remote_now(self, seq: int, update: bytes, shape: UpdateShape) -> None:
        try:
            short = self._document.apply(update, shape)
        except InvalidUpdate as exc:
            log.error("published update could not be integrated", extra={"doc": self.name, "seq": seq,
                                                                          "reason": exc.reason})
            return
        if short:
            self._document.uncovered.add(seq)
            log.error("published update did not integrate fully", extra={"doc": self.name, "seq": seq})
        self._applied_seq = max(self._applied_seq, seq)
        self._broadcast(protocol.sync_update(update), None)
        self._advanced()
        if self._on_change is not None:
            self._on_change(self.name, seq)

    async def resync(self) -> list[tuple[int, bytes]]:
        """Read the store and apply (and forward) what this room lacks: after this node may
        have missed published updates. Returns the stored rows that brought the room
        something new. Raises :class:`StoreUnavailable`."""
        return self._integrate(await self._store.load(self.name))

    async def catch_up(self) -> None:
        """In a cluster, read what other nodes stored that fan-out has not delivered yet
        (:meth:`resync`); on one node every stored update went through this room: nothing to do.

        For a writer that must see everything committed before it took a cluster-wide claim
        (a checkout). Raises :class:`StoreUnavailable`."""
        if self._fanout is not None:
            await self.resync()

    def _integrate(self, stored: StoredDoc) -> list[tuple[int, bytes]]:
        rows = ([(stored.snapshot_seq, stored.snapshot)] if stored.snapshot else []) + stored.updates
        missing: list[bytes] = []
        news: list[tuple[int, bytes]] = []

        def collect(event: TransactionEvent) -> None:
            missing.append(event.update)

        subscription = self.doc.observe(collect)
        try:
            for seq, update in rows:
                if seq <= self._synced_through:
                    continue
                before = len(missing)
                try:
                    short = self._document.apply(update, read_trusted_update(update))
                except InvalidUpdate as exc:
                    self._document.uncovered.add(seq)
                    log.error("skipping stored update that cannot be integrated",
                              extra={"doc": self.name, "seq": seq, "reason": exc.reason})
                    continue
                if short:
                    self._document.uncovered.add(seq)
                    log.error("stored update did not integrate fully", extra={"doc": self.name, "seq": seq})
                if len(missing) > before:
                    news.append((seq, update))
            self._remote_pending = [(seq, update) for seq, update in self._remote_pending if seq > stored.last_seq]
        finally:
            self.doc.unobserve(subscription)
        self._synced_through = max(self._synced_through, stored.last_seq)
        self._applied_seq = max(self._applied_seq, stored.last_seq)
        if missing:
            log.info("caught up from the store", extra={"doc": self.name, "seq": stored.last_seq})
            self._broadcast(protocol.sync_update(missing[0] if len(missing) == 1 else merge_updates(*missing)), None)
            self._advanced()
            if self._on_change is not None:
                self._on_change(self.name, stored.last_seq)
        return news

    def remote_awareness(self, origin: str, payload: bytes) -> None:
        """Awareness entries of clients of node ``origin``: remember them, forward the news."""
        remembered = self._awareness.remember(origin, protocol.decode_awareness(payload))
        if remembered.dropped:
            self._metrics.rejected.labels("awareness_room_full").inc(remembered.dropped)
        for frame in awareness_frames(remembered.news, self._awareness.limits.frame_bytes):
            self._broadcast(frame, None)

    def local_awareness(self) -> bytes | None:
        """The awareness entries of this node's own clients (for another node that opened the room)."""
        entries = self._awareness.local_entries()
        return protocol.encode_awareness(entries) if entries else None

    def forget_node(self, origin: str) -> None:
        """Node ``origin`` is gone: remove its clients' states here and tell our peers."""
        for frame in awareness_frames(self._awareness.drop_owner(origin), self._awareness.limits.frame_bytes):
            self._broadcast(frame, None)

    def awareness_snapshot(self) -> bytes | None:
        """Every state in one frame (None if there is none); peers are sent :meth:`awareness_frames`."""
        entries = self._awareness.entries()
        return protocol.awareness(protocol.encode_awareness(entries)) if entries else None

    def awareness_states(self) -> list[AwarenessEntry]:
        """Every awareness state the room holds (this node's clients and other nodes')."""
        return self._awareness.entries()

    def awareness_frames(self) -> list[bytes]:
        """Every state, in frames under ``max_message_bytes``: what a joiner or a query is answered."""
        return self._awareness.frames()

    async def compact(self) -> None:
        """Fold everything applied so far into one snapshot row.

        In a cluster the room may have applied seq 15 before seeing seq 12 from another
        node, so compacting through its own applied seq could delete a row its snapshot
        lacks: it loads the document first, applies what it lacks, and compacts through
        that load's last seq (every row of the document up to it is in the load: seqs of one
        document commit in order).
        """
        if self._compacting or self._inflight:
            return
        self._compacting = True
        try:
            folded = self._tail
            if folded == 0:
                return
            if self._fanout is None:
                through = self._applied_seq
            else:
                stored = await self._store.load(self.name)
                self._integrate(stored)
                through = stored.last_seq
                if through <= stored.snapshot_seq:
                    self._tail -= folded  # nothing after the snapshot: another node compacted it
                    return
            if self._document.uncovered:
                # Never fold a row the document does not fully hold: the snapshot would lose it.
                through = min(through, min(self._document.uncovered) - 1)
                if through < 1 or through <= self._compacted_through:
                    return
                log.warning("compacting only up to a stored update the document does not fully hold",
                            extra={"doc": self.name, "seq": through + 1})
            snapshot = self.doc.get_update()
            await self._store.compact(self.name, snapshot, through)
            self._compacted_through = through
            if not self._document.uncovered:
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
