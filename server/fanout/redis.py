"""Cross-node fan-out on Redis pub/sub: one channel per room, the store as the source of truth.

Channels (``PREFIX`` is ``--fanout-prefix``, ``syncline`` by default)::

    PREFIX:room:{tenant}/{kind}/{id}   updates and awareness of one room
    PREFIX:changes                     "seq N of doc D was stored", for change-feed readers on every node
    PREFIX:nodes                       heartbeats and goodbyes of every node

Every message is a msgpack map (an *envelope*) with ``t`` (type) and ``o`` (the
origin node's id); a node ignores its own. Types: ``up`` (``s`` seq, ``u`` the
stored update bytes), ``aw`` (``p`` an awareness payload), ``aq`` (a node opened the
room: others republish their clients' awareness), ``rs`` (a node failed to publish
some update of the room: others re-read it from the store), ``ch`` (``d`` doc, ``s``
seq: on the changes channel, sent with each update in one pipelined round trip, so
that a REST change feed on a node without the room open wakes too), ``bc`` (``n``
tenant, ``b`` a msgpack ``broadcast`` message: on the changes channel, which every node
reads, for the tenant's peers and feed readers on every node), ``hb`` and ``bye``.

Why pub/sub and not streams: an update travels one hop (PUBLISH, then a push to each
subscribed node), nothing accumulates in Redis, and a node subscribes only to the
rooms it has open. Pub/sub is at-most-once, so it is never trusted for completeness:
whenever this node's subscription (re)starts, every open room is re-read from the
store and what it lacks is applied (seqs of one document commit in order, so a
load holds every row up to its last seq). Streams would give replay, but the store
already is the replayable log; keeping a second one in Redis would mean trimming it
and reconciling two logs.

One subscriber connection per node, owned by this object, is read by one task;
SUBSCRIBE/UNSUBSCRIBE commands are sent on it under a lock and a subscription counts
as in effect only once Redis confirms it. One publisher task sends everything queued
meanwhile in one pipelined round trip (group publishing); a write waits for its batch.
Redis-py's own reconnect-and-resubscribe is switched off (no retries): a hidden
reconnection would skip the resync, so every failure ends the session and the next
one resubscribes and resyncs.

Degraded mode. While this node cannot fan out (Redis unreachable, a subscription not
confirmed, publishing failing), it keeps accepting and acknowledging writes: they are
in the store, delivered to this node's own peers, and the rooms they touched are
marked; once publishing works again the others are told to re-read those rooms
(``rs``). Meanwhile every node that cannot hear the others re-reads its open rooms
from the store every ``POLL_SECONDS`` (so a reader on another node sees a write within
about a second plus one load), and so does a node that heard another node go silent
without a goodbye (it may be cut off from Redis but still writing to the store), for
up to ``SILENT_POLL_SECONDS`` or until that node is heard again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import msgpack
from anyio.abc import TaskGroup, TaskStatus
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..metrics import Metrics
from .base import FanoutListener, FanoutUnavailable

__all__ = ["RedisFanout"]

log = logging.getLogger("syncline.fanout")

_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError, EOFError)
"""What a failing Redis, network or driver raises: all of it is "unavailable"."""

HEARTBEAT_SECONDS = 1.0
"""How often a node says it is alive (and checks its own subscription with it)."""
NODE_EXPIRY_SECONDS = 5.0
"""A node silent for this long is gone: its clients' awareness states are removed."""
CONFIRM_SECONDS = 2.0
"""How long a SUBSCRIBE may wait for Redis's confirmation before the session is restarted."""
COMMAND_TIMEOUT_SECONDS = 2.0
"""Bound on connecting and on each PUBLISH."""
BACKOFF_SECONDS = (0.1, 2.0)
"""First and largest pause between reconnection attempts."""
OUTBOX_LIMIT = 4096
"""Envelopes waiting to be published beyond which awareness is dropped (it is ephemeral)."""
PUBLISH_BATCH = 512
"""Most envelopes sent in one pipelined round trip."""
POLL_SECONDS = 1.0
"""While degraded: how often every open room is re-read from the store."""
SILENT_POLL_SECONDS = 300.0
"""How long a node keeps polling after another node went silent without a goodbye."""


def shown_url(url: str) -> str:
    """``scheme://host:port/db`` of a Redis URL: never its user or password."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
    except ValueError:
        return "redis://?"


@dataclass(eq=False)
class _Outgoing:
    """Envelopes (channel, data) waiting for the publisher task, sent in one batch; ``done``
    (if any) resolves once Redis took them all."""

    messages: tuple[tuple[bytes, bytes], ...]
    room: str | None = None
    """The room whose stored update this carries: re-read by the others if the publish fails."""
    done: asyncio.Future[None] | None = None


class RedisFanout:
    """The :class:`~.base.Fanout` on Redis pub/sub (``--fanout redis://host:port/db``)."""

    shared = True

    def __init__(
        self, url: str, *, prefix: str = "syncline", node_id: str | None = None, metrics: Metrics | None = None
    ) -> None:
        self.url = url
        self._metrics = metrics or Metrics()
        self._sent = self._metrics.fanout_messages.labels("out")
        self._received = self._metrics.fanout_messages.labels("in")
        self.prefix = prefix
        self.node_id = node_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._room_prefix = f"{prefix}:room:"
        self._nodes_channel = f"{prefix}:nodes".encode()
        self._changes_channel = f"{prefix}:changes".encode()
        # No retries anywhere: a failure must surface (see the module doc).
        self._pool = ConnectionPool.from_url(
            url, socket_connect_timeout=COMMAND_TIMEOUT_SECONDS, socket_timeout=COMMAND_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0), max_connections=64,
        )
        self._client = Redis(connection_pool=self._pool, retry=Retry(NoBackoff(), 0))
        self._listener: FanoutListener | None = None
        self._task_group: TaskGroup | None = None
        self._wanted: set[str] = set()
        self._sub: AbstractConnection | None = None
        self._session_scope: anyio.CancelScope | None = None
        self._send_lock = anyio.Lock()
        self._confirming: dict[bytes, anyio.Event] = {}
        self._subscribed = False
        self._subscribed_at = 0.0
        self._own_seen = 0.0
        self._publish_error: str | None = None
        self._session_error = "not connected yet"
        self._dirty: set[str] = set()
        self._nodes: dict[str, float] = {}
        self._silent: dict[str, float] = {}
        """Nodes that stopped sending heartbeats without a goodbye, and when: we poll meanwhile."""
        self.polls = 0
        """Rounds of re-reading the open rooms from the store while degraded."""
        self._outbox: deque[_Outgoing] = deque()
        self._wakeup = asyncio.Event()

    def __repr__(self) -> str:
        return f"RedisFanout(node={self.node_id!r}, prefix={self.prefix!r}, available={self.available})"

    # -- state ---------------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self._subscribed and self._publish_error is None

    @property
    def reason(self) -> str:
        if not self._subscribed:
            return self._session_error
        return self._publish_error or ""

    def bind(self, listener: FanoutListener) -> None:
        self._listener = listener

    def _channel(self, room: str) -> bytes:
        return (self._room_prefix + room).encode()

    def _envelope(self, kind: str, **fields: Any) -> bytes:
        data: bytes = msgpack.packb({"t": kind, "o": self.node_id, **fields})
        return data

    # -- lifecycle -----------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep a subscription session going until cancelled; say goodbye on the way out.

        Raises :class:`FanoutUnavailable` before it starts if Redis does not answer a PING
        (a wrong URL or a Redis that is not running shows at start-up, in one line); an
        outage after that degrades the fan-out instead (see the module doc)."""
        try:
            with anyio.fail_after(COMMAND_TIMEOUT_SECONDS):
                await self._client.ping()
        except _ERRORS as exc:
            await self._pool.disconnect()
            reason = str(exc) or f"no answer within {COMMAND_TIMEOUT_SECONDS:g} s"
            raise FanoutUnavailable(f"cannot reach Redis at {shown_url(self.url)}: {reason}") from exc
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                tg.start_soon(self._heartbeats)
                tg.start_soon(self._publisher)
                tg.start_soon(self._poll_while_degraded)
                task_status.started()
                await self._sessions()
        finally:
            self._task_group = None
            self._subscribed = False
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                try:
                    await self._client.publish(self._nodes_channel, self._envelope("bye"))
                except _ERRORS:
                    pass  # the others expire us after NODE_EXPIRY_SECONDS instead
                await self._client.aclose()
                await self._pool.disconnect()

    async def _sessions(self) -> None:
        delay = BACKOFF_SECONDS[0]
        while True:
            started = time.monotonic()
            try:
                await self._session()
            except _ERRORS as exc:
                self._session_error = f"{type(exc).__name__}: {exc}"
            if self._subscribed_at >= started:
                delay = BACKOFF_SECONDS[0]  # it worked for a while: retry promptly
            log.warning("fan-out subscription lost; reconnecting", extra={"error": self._session_error})
            await anyio.sleep(delay)
            delay = min(delay * 2, BACKOFF_SECONDS[1])

    async def _session(self) -> None:
        """One subscriber connection: subscribe to everything wanted, resync, read until it fails."""
        connection = self._pool.make_connection()
        try:
            with anyio.fail_after(COMMAND_TIMEOUT_SECONDS):
                await connection.connect()
            self._sub = connection
            with anyio.CancelScope() as scope:
                self._session_scope = scope
                rooms: set[str] = set()
                pending = {self._nodes_channel, self._changes_channel}
                while pending:  # rooms opened while we subscribe are subscribed in the next round
                    async with self._send_lock:
                        await connection.send_command("SUBSCRIBE", *pending, check_health=False)
                    with anyio.fail_after(CONFIRM_SECONDS):
                        while pending:
                            pending.discard(self._dispatch(await connection.read_response(disconnect_on_error=False)))
                    added = self._wanted - rooms
                    rooms |= added
                    pending = {self._channel(room) for room in added}
                self._own_seen = time.monotonic()
                self._subscribed = True
                self._subscribed_at = time.monotonic()
                self._session_error = ""
                log.info("fan-out subscribed", extra={"node": self.node_id, "rooms": len(self._wanted)})
                assert self._task_group is not None and self._listener is not None
                # Anything published while we were not subscribed is in the store: apply it.
                self._task_group.start_soon(self._listener.resync, None)
                self._task_group.start_soon(self._rejoin)
                while True:
                    self._dispatch(await connection.read_response(disconnect_on_error=False))
            if scope.cancelled_caught:
                raise TimeoutError(self._session_error or "the subscription stopped answering")
        finally:
            self._subscribed = False
            self._sub = None
            self._session_scope = None
            for event in self._confirming.values():
                event.set()
            with anyio.CancelScope(shield=True):
                await connection.disconnect(nowait=True)

    def _restart_session(self, reason: str) -> None:
        self._session_error = reason
        self._subscribed = False
        if self._session_scope is not None:
            self._session_scope.cancel()

    # -- receiving -----------------------------------------------------------------

    def _dispatch(self, response: Any) -> bytes | None:
        """Handle one push from the subscriber connection; return the channel a
        subscription confirmation is for (None for anything else)."""
        if not isinstance(response, list) or len(response) < 3:
            return None
        kind, channel, data = response[0], response[1], response[2]
        if kind == b"subscribe":
            event = self._confirming.pop(channel, None)
            if event is not None:
                event.set()
            return bytes(channel)
        if kind != b"message":
            return None
        try:
            envelope = msgpack.unpackb(data)
            origin = envelope["o"]
            kind = envelope["t"]
        except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
            log.warning("ignoring a malformed fan-out message", extra={"channel": str(channel), "error": str(exc)})
            return None
        if channel == self._nodes_channel:
            self._node_message(origin, kind)
            return None
        if origin == self.node_id:
            return None
        self._received.inc()
        listener = self._listener
        assert listener is not None
        if channel == self._changes_channel:
            try:
                if kind == "bc":
                    listener.remote_broadcast(str(envelope["n"]), bytes(envelope["b"]))
                else:
                    listener.remote_change(str(envelope["d"]), int(envelope["s"]))
            except (KeyError, ValueError, TypeError) as exc:
                log.warning("ignoring a malformed fan-out message", extra={"error": str(exc)})
            return None
        room = bytes(channel).decode(errors="replace")[len(self._room_prefix):]
        try:
            if kind == "up":
                listener.remote_update(room, int(envelope["s"]), bytes(envelope["u"]))
            elif kind == "aw":
                self._nodes.setdefault(origin, time.monotonic())
                listener.remote_awareness(room, origin, bytes(envelope["p"]))
            elif kind == "aq":
                listener.awareness_requested(room)
            elif kind == "rs" and self._task_group is not None:
                self._task_group.start_soon(listener.resync, [room])
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("ignoring a malformed fan-out message", extra={"doc": room, "error": str(exc)})
        return None

    def _node_message(self, origin: str, kind: str) -> None:
        if origin == self.node_id:
            self._own_seen = time.monotonic()
            return
        self._silent.pop(origin, None)
        if kind == "bye":
            if self._nodes.pop(origin, None) is not None and self._listener is not None:
                self._listener.node_gone(origin)
        else:
            self._nodes[origin] = time.monotonic()

    # -- subscriptions -------------------------------------------------------------

    async def subscribe(self, room: str) -> bool:
        self._wanted.add(room)
        connection = self._sub
        if connection is None or not self._subscribed:
            return False  # the next session subscribes to it and resyncs it
        channel = self._channel(room)
        event = self._confirming[channel] = anyio.Event()
        try:
            async with self._send_lock:
                await connection.send_command("SUBSCRIBE", channel, check_health=False)
        except _ERRORS as exc:
            self._restart_session(f"subscribe failed: {type(exc).__name__}: {exc}")
            return False
        with anyio.move_on_after(CONFIRM_SECONDS) as scope:
            await event.wait()
        if scope.cancelled_caught or self._sub is not connection:
            self._restart_session("Redis did not confirm a subscription in time")
            return False
        self._queue(channel, self._envelope("aq"))
        return True

    async def unsubscribe(self, room: str) -> None:
        self._wanted.discard(room)
        connection = self._sub
        if connection is None:
            return
        async with self._send_lock:
            if room in self._wanted:
                return  # opened again meanwhile: keep the subscription
            try:
                await connection.send_command("UNSUBSCRIBE", self._channel(room), check_health=False)
            except _ERRORS as exc:
                self._restart_session(f"unsubscribe failed: {type(exc).__name__}: {exc}")

    # -- publishing ----------------------------------------------------------------

    async def publish_update(self, room: str, seq: int, update: bytes) -> None:
        if not self.available:
            # Degraded: the write is stored; the others poll the store meanwhile and are told
            # to re-read the room once we can publish again (see the module doc).
            self._dirty.add(room)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.append(_Outgoing((
            (self._channel(room), self._envelope("up", s=seq, u=update)),
            (self._changes_channel, self._envelope("ch", d=room, s=seq)),
        ), room, done))
        self._wakeup.set()
        await done  # raises FanoutUnavailable if the batch holding it failed

    def publish_awareness(self, room: str, payload: bytes) -> None:
        self._queue(self._channel(room), self._envelope("aw", p=payload))

    def publish_broadcast(self, tenant: str, payload: bytes) -> None:
        self._queue(self._changes_channel, self._envelope("bc", n=tenant, b=payload))

    def _queue(self, channel: bytes, envelope: bytes) -> None:
        """Fire and forget (awareness, queries): dropped while unavailable or when too many wait."""
        if not self.available or len(self._outbox) >= OUTBOX_LIMIT:
            return  # ephemeral; the next session asks every node again ("aq")
        self._outbox.append(_Outgoing(((channel, envelope),)))
        self._wakeup.set()

    async def _publish(self, channel: bytes, envelope: bytes) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.append(_Outgoing(((channel, envelope),), None, done))
        self._wakeup.set()
        await done

    async def _publisher(self) -> None:
        """Group publishing: everything queued while a round trip is under way goes in the next
        pipeline (one connection, one round trip per batch), as group commit does for the store."""
        outbox = self._outbox
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while outbox:
                batch = [outbox.popleft() for _ in range(min(len(outbox), PUBLISH_BATCH))]
                try:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for item in batch:
                            for channel, data in item.messages:
                                pipe.publish(channel, data)
                        await pipe.execute()
                except _ERRORS as exc:
                    self._publish_error = f"publish failed: {type(exc).__name__}: {exc}"
                    for item in batch:
                        if item.room is not None:
                            # Stored but not sent: the others re-read the room once we can publish again.
                            self._dirty.add(item.room)
                        if item.done is not None and not item.done.done():
                            item.done.set_exception(FanoutUnavailable(self._publish_error))
                    continue
                self._sent.inc(sum(len(item.messages) for item in batch))
                for item in batch:
                    if item.done is not None and not item.done.done():
                        item.done.set_result(None)

    @property
    def polling(self) -> bool:
        """True while this node catches its rooms up from the store by polling (see the module doc)."""
        now = time.monotonic()
        for node, since in list(self._silent.items()):
            if now - since > SILENT_POLL_SECONDS:
                del self._silent[node]
        return not self.available or bool(self._silent)

    async def _poll_while_degraded(self) -> None:
        """Re-read every open room from the store each ``POLL_SECONDS`` while :attr:`polling`."""
        while True:
            await anyio.sleep(POLL_SECONDS)
            if self.polling and self._listener is not None:
                self.polls += 1
                await self._listener.resync(None)

    async def _rejoin(self) -> None:
        """Just subscribed: find out at once whether publishing works (not at the next heartbeat),
        then, for every open room, publish our clients' awareness and ask the other nodes for
        theirs. Either side may have missed the other's changes while cut off, and a node that
        rejoined earlier asked us while we were not listening: whichever node rejoins last
        brings both up to date."""
        await self._beat()
        assert self._listener is not None
        for room in list(self._wanted):
            self._listener.awareness_requested(room)
            self._queue(self._channel(room), self._envelope("aq"))

    async def _beat(self) -> None:
        """Publish a heartbeat, and the rooms the others must re-read; publishing works if they went out."""
        try:
            with anyio.fail_after(COMMAND_TIMEOUT_SECONDS + 1):
                await self._publish(self._nodes_channel, self._envelope("hb"))
                for room in list(self._dirty):
                    await self._publish(self._channel(room), self._envelope("rs"))
                    self._dirty.discard(room)
            if self._publish_error is not None:
                log.info("fan-out publishing works again")
            self._publish_error = None
        except (FanoutUnavailable, TimeoutError) as exc:
            self._publish_error = str(exc) or "publishing timed out"

    async def _heartbeats(self) -> None:
        """Say we are alive; notice our own silence (a stalled subscription) and others'."""
        while True:
            await self._beat()
            now = time.monotonic()
            if self._subscribed and now - self._own_seen > NODE_EXPIRY_SECONDS / 2:
                self._restart_session("our own heartbeats stopped arriving")
            for node, seen in list(self._nodes.items()):
                if now - seen > NODE_EXPIRY_SECONDS:
                    del self._nodes[node]
                    self._silent[node] = now
                    log.info("fan-out node gone", extra={"node": node})
                    if self._listener is not None:
                        self._listener.node_gone(node)
            await anyio.sleep(HEARTBEAT_SECONDS)
