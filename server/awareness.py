"""The awareness states of one room: who announced each, and the bounds that keep them small.

Awareness (cursors, names, "who is here") is ephemeral: the relay keeps each client's latest
state only to greet late joiners and to tell the others when its connection closes. The
connection that first announced a client **owns** it (a local peer, or the id of the cluster
node whose client it is); when the owner goes, its clients' states go with it.

Two bounds hold at all times:

* a connection's **share**: at most ``connection_states`` states of at most
  ``connection_bytes`` bytes in all. An announcement that would take its owner over its share
  is refused whole (:class:`AwarenessOverShare`; the relay closes that connection with 4413).
* the **room**: at most ``room_states`` states of at most ``room_bytes`` bytes, states from
  other nodes included. A state that would take the room over is dropped (neither kept nor
  relayed): a full room hides a newcomer's presence rather than disconnecting it.

A state's size is the bytes it takes in an awareness update (client id, clock and JSON text).
:func:`awareness_frames` splits entries into awareness frames that each stay under a size
(``--max-message-bytes``), so that a late joiner whose client limits frame sizes can join.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from syncline.engine import protocol
from syncline.engine.protocol import AwarenessEntry

from .errors import AwarenessOverShare

FRAME_OVERHEAD = 1 + 8 + 8
"""An awareness frame's bytes around its entries: the message type, the payload's length, the entry count."""

Owner = Hashable
"""A local peer (any hashable object), or the id of another node (a ``str``)."""


@dataclass(frozen=True)
class AwarenessLimits:
    """The bounds of one room's awareness; the defaults are those of ``Settings``."""

    connection_states: int = 16
    connection_bytes: int = 65_536
    room_states: int = 1_000
    room_bytes: int = 1_048_576
    frame_bytes: int = 1_048_576
    """Largest awareness frame sent to a peer (the relay's ``max_message_bytes``)."""


@dataclass
class Remembered:
    """What :meth:`RoomAwareness.remember` made of an update."""

    news: list[AwarenessEntry] = field(default_factory=list)
    """Entries newer than what the room held: kept (or removed, for ``null``), to forward to other nodes."""
    kept: list[AwarenessEntry] = field(default_factory=list)
    """Every entry not dropped (news and echoes), in order: what may be relayed to the room's peers."""
    dropped: int = 0
    """News left out because the room was at its bound."""


def entry_bytes(entry: AwarenessEntry) -> int:
    """The bytes ``entry`` takes in an awareness update."""
    return len(protocol.encode_awareness([entry])) - 1  # less the one-byte count of a one-entry update


def awareness_frames(entries: Iterable[AwarenessEntry], frame_bytes: int) -> list[bytes]:
    """Awareness frames holding ``entries`` in order, each at most ``frame_bytes`` long.

    An entry too big for any frame (only possible if a peer's limit is below a state's size) goes alone.
    """
    frames: list[bytes] = []
    batch: list[AwarenessEntry] = []
    size = FRAME_OVERHEAD
    for entry in entries:
        cost = entry_bytes(entry)
        if batch and size + cost > frame_bytes:
            frames.append(protocol.awareness(protocol.encode_awareness(batch)))
            batch, size = [], FRAME_OVERHEAD
        batch.append(entry)
        size += cost
    if batch:
        frames.append(protocol.awareness(protocol.encode_awareness(batch)))
    return frames


class RoomAwareness:
    """Each client's latest state, its owner, and the per-owner and per-room totals."""

    def __init__(self, limits: AwarenessLimits | None = None) -> None:
        self.limits = limits or AwarenessLimits()
        self._states: dict[int, AwarenessEntry] = {}
        self._owners: dict[int, Owner] = {}
        self._sizes: dict[int, int] = {}
        self._owned: dict[Owner, list[int]] = {}
        """Per owner: [states, bytes]."""
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._states)

    def owned(self, owner: Owner) -> tuple[int, int]:
        """(states, bytes) that ``owner`` holds."""
        count, size = self._owned.get(owner, (0, 0))
        return count, size

    def entries(self) -> list[AwarenessEntry]:
        return list(self._states.values())

    def local_entries(self) -> list[AwarenessEntry]:
        """States of this node's own clients (owners that are not node ids)."""
        return [entry for client, entry in self._states.items() if not isinstance(self._owners[client], str)]

    def frames(self) -> list[bytes]:
        """Every state, in frames under the limit: what a late joiner is sent."""
        return awareness_frames(self._states.values(), self.limits.frame_bytes)

    def remember(self, owner: Owner, entries: Iterable[AwarenessEntry]) -> Remembered:
        """Integrate ``entries`` announced by ``owner``; raise :class:`AwarenessOverShare` (nothing
        changed) if a local owner would hold more than its share, counting the states of this update
        that the room's bound drops."""
        result = Remembered()
        undo: dict[int, tuple[AwarenessEntry | None, Owner | None]] = {}
        limits = self.limits
        dropped_states = dropped_bytes = 0  # the announcer's own states dropped from this update
        for entry in entries:
            client = entry.client_id
            current = self._states.get(client)
            if current is not None and not (
                entry.clock > current.clock or (entry.clock == current.clock and entry.state == "null")
            ):
                result.kept.append(entry)  # y-websocket peers echo others' states back: not news, not theirs
                continue
            if client not in undo:
                undo[client] = (current, self._owners.get(client))
            if entry.state == "null":
                if current is not None:
                    self._remove(client)
                result.news.append(entry)
                result.kept.append(entry)
                continue
            # The connection that first announced a client owns it: its close removes the state.
            holder = self._owners.get(client, owner)
            size = entry_bytes(entry)
            grows = size - self._sizes.get(client, 0)
            own = holder is owner and not isinstance(owner, str)  # a local announcer's own state
            if own:
                states, total = self.owned(owner)
                states += dropped_states + (current is None)
                total += dropped_bytes + grows
                if states > limits.connection_states or total > limits.connection_bytes:
                    self._restore(undo)
                    raise AwarenessOverShare(states, total, limits.connection_states, limits.connection_bytes)
            if (current is None and len(self._states) >= limits.room_states) or (
                grows > 0 and self.bytes + grows > limits.room_bytes
            ):
                result.dropped += 1
                if own:
                    dropped_states += current is None
                    dropped_bytes += max(grows, 0)
                continue
            self._put(client, entry, holder, size)
            result.news.append(entry)
            result.kept.append(entry)
        return result

    def drop_owner(self, owner: Owner) -> list[AwarenessEntry]:
        """Forget every state ``owner`` holds; return the removals to tell the others."""
        gone = [client for client, holder in self._owners.items() if holder == owner]
        removals = [AwarenessEntry(client, self._states[client].clock + 1, "null") for client in gone]
        for client in gone:
            self._remove(client)
        return removals

    # -- bookkeeping -----------------------------------------------------------------------------

    def _put(self, client: int, entry: AwarenessEntry, owner: Owner, size: int) -> None:
        if client in self._states:
            self._remove(client)
        self._states[client] = entry
        self._owners[client] = owner
        self._sizes[client] = size
        totals = self._owned.setdefault(owner, [0, 0])
        totals[0] += 1
        totals[1] += size
        self.bytes += size

    def _remove(self, client: int) -> None:
        del self._states[client]
        owner = self._owners.pop(client)
        size = self._sizes.pop(client)
        totals = self._owned[owner]
        totals[0] -= 1
        totals[1] -= size
        if totals[0] == 0:
            del self._owned[owner]
        self.bytes -= size

    def _restore(self, undo: dict[int, tuple[AwarenessEntry | None, Owner | None]]) -> None:
        for client, (entry, owner) in undo.items():
            if client in self._states:
                self._remove(client)
            if entry is not None and owner is not None:
                self._put(client, entry, owner, entry_bytes(entry))
