"""The fan-out interface: how relay nodes that share rooms hear of each other's writes.

A node stores each update it accepts once, in the shared store, and then *publishes*
it: every other node with that room open applies it to its own copy of the document
and forwards it to its own peers, and never stores it again. Awareness (who is here,
cursors) travels the same way. The store stays the source of truth: a node that may
have missed messages (its subscription restarted, a publisher failed) re-reads each
open room from the store and applies what it lacks (:meth:`FanoutListener.resync`).

A single relay node needs none of this: :class:`~.local.LocalFanout` is the default
and rooms skip fan-out entirely when it is used (no extra await on the write path).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import anyio
from anyio.abc import TaskStatus


class FanoutError(Exception):
    """Base class of fan-out failures."""


class FanoutUnavailable(FanoutError):
    """Raised when Redis cannot be reached at start-up, or when a stored write could not be
    sent to the other nodes (they catch up from the store). ``reason`` says what failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"fan-out unavailable: {reason}")
        self.reason = reason


class FanoutListener(Protocol):
    """What the fan-out calls on the node's rooms (the :class:`~syncline.server.rooms.RoomManager`)."""

    def remote_update(self, room: str, seq: int, update: bytes) -> None:
        """Another node stored ``update`` as ``seq`` of ``room``: apply and forward it, never store it."""
        ...

    def remote_change(self, room: str, seq: int) -> None:
        """Another node stored ``seq`` of ``room`` (every node hears this, room open or not):
        wake this node's change-feed readers."""
        ...

    def remote_awareness(self, room: str, origin: str, payload: bytes) -> None:
        """Awareness entries of clients connected to node ``origin``."""
        ...

    def remote_broadcast(self, tenant: str, payload: bytes) -> None:
        """Another node broadcast ``payload`` (a msgpack ``broadcast`` message) to ``tenant``'s peers."""
        ...

    def awareness_requested(self, room: str) -> None:
        """Another node opened ``room``: publish the awareness states of our own clients in it."""
        ...

    def node_gone(self, origin: str) -> None:
        """Node ``origin`` said goodbye or stopped sending heartbeats: forget its clients' states."""
        ...

    async def resync(self, rooms: Iterable[str] | None) -> None:
        """Re-read ``rooms`` (None: every open room) from the store and apply what they lack."""
        ...


class Fanout(Protocol):
    """Cross-node fan-out, chosen by ``--fanout``; one per relay process."""

    node_id: str
    """This process's id in envelopes: a node skips its own messages."""

    @property
    def shared(self) -> bool:
        """False for the single-node default: rooms then never call the fan-out."""
        ...

    @property
    def available(self) -> bool:
        """True while writes can be fanned out (subscribed and publishing); False: degraded, writes
        go on into the store and ``/readyz`` says ``"fanout": "degraded"``."""
        ...

    @property
    def reason(self) -> str:
        """Why the fan-out is unavailable (empty while it is available)."""
        ...

    def bind(self, listener: FanoutListener) -> None:
        """Deliver remote messages to ``listener`` (before :meth:`run`)."""
        ...

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, subscribe and keep doing so until cancelled; reconnect by itself. Raises
        :class:`FanoutUnavailable` before it starts if the fan-out cannot be reached at all."""
        ...

    async def subscribe(self, room: str) -> bool:
        """Receive ``room``'s messages from now on. True once the subscription is in effect;
        False if it is not (Redis is unreachable): the next session subscribes to it and
        resyncs the rooms open by then, and a room it missed must resync itself."""
        ...

    async def unsubscribe(self, room: str) -> None:
        """Stop receiving ``room``'s messages (the room was evicted)."""
        ...

    async def publish_update(self, room: str, seq: int, update: bytes) -> None:
        """Send a stored update to the other nodes. While the fan-out is unavailable this returns
        at once and the other nodes catch the room up from the store; it raises
        :class:`FanoutUnavailable` if a send under way failed (the same catch-up follows).
        Either way the update is stored: its writer may be acknowledged."""
        ...

    def publish_awareness(self, room: str, payload: bytes) -> None:
        """Queue awareness entries for the other nodes (best effort: never blocks, may drop)."""
        ...

    def publish_broadcast(self, tenant: str, payload: bytes) -> None:
        """Queue a tenant-wide broadcast for every other node (best effort: never blocks, may drop)."""
        ...
