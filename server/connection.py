"""One WebSocket peer in one room: a receive loop and a sender task with a bounded queue.

The queue is bounded in messages (``send_queue_messages``) and in bytes (``send_queue_bytes``):
the bytes of queued frames and of the frame being handed to the WebSocket layer. A frame that
would take a non-empty queue over either bound drops the peer as a slow consumer (4408); one
frame of any size is queued when nothing else is (a big document's first sync step 2). Below
the queue, a frame is written only while the socket's buffer is under its high-water mark
(64 KiB), so a peer that never reads holds at most its queue, one frame more and that mark.

Under the relay's own WebSocket protocol (:mod:`.wsprotocol`) frames go straight to the
socket's transport, encoded once per broadcast (:func:`~.frames.binary_frame`): while the
queue is empty and the transport is under its mark, :meth:`Connection.send` writes the frame
at once, in the caller's turn, with no hand-off to the sender task; otherwise the frame is
queued and the sender writes it when the transport has drained. Our sync step 2 answers are
always queued and written by the sender, so that the step 1s a peer sends back to back are
answered together, as described below. The receive loop takes the peer's messages from the
protocol's :class:`~.inbox.Inbox`, not from ASGI events. Under any other ASGI server the
sender hands each frame to the server (``websocket.send``) and the receive loop reads ASGI
``websocket.receive`` events, as the only path.

A sync step 1 is answered only when the answer can be queued. While this connection's previous
answer is still queued, a new step 1 is not answered at once: its state vector waits (only the
latest one) and is answered when the previous answer has been handed over. The waiting answer
counts as the size of the previous one: if both do not fit the budget, the peer is dropped (4408).

Writes are handled in the order they arrive. One that depends on clocks the room has
not received (:class:`UpdateOutOfOrder`) is held, and the relay sends the peer its
sync step 1 so that the peer's step 2 brings what is missing; held writes are retried
whenever the room integrates something new, from any peer or node. Acknowledgements
count a prefix, so a held write holds back the acknowledgement of every write after it
until it lands.

The sender task runs only while frames are queued, and the retrier only while writes are
held: an idle peer, whose frames went straight to its transport, holds neither task. When
the peer leaves, they return at their next wake-up rather than being cancelled (a cancelled
task's exception keeps its frames, and this connection, in a reference cycle), and the
token's expiry is a loop timer, not a sleeping task: the connection and its queues are freed
by reference counting as soon as the peer has gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable

import anyio
from anyio.abc import TaskGroup
from pycrdt import Doc
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from syncline.engine import InvalidStateVector, InvalidUpdate, encode_diff
from syncline.engine import closecodes, protocol
from syncline.engine.errors import ProtocolError
from syncline.engine.protocol import Kind
from syncline.engine.tokens import Grant

from .access import note_cause
from .errors import AwarenessOverShare, ClientIdTaken, UpdateNotIntegrated, UpdateOutOfOrder
from .frames import EXTENSION, FrameWriter, binary_frame
from .held import HeldWrites
from .inbox import Inbox
from .fanout import FanoutUnavailable
from .metrics import Metrics
from .room import EMPTY_UPDATE, Room
from .settings import Settings
from .store import StoreUnavailable
from .throttle import ByteThrottle
from .tally import message_tally

log = logging.getLogger("syncline.connection")

CLOSE_TIMEOUT_SECONDS = 2.0


class TokenBucket:
    """``rate`` messages per second sustained, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class Connection:
    """Implements the room's ``Peer``: ``send`` never blocks; a full queue drops this peer."""

    def __init__(self, websocket: WebSocket, room: Room, grant: Grant, settings: Settings, metrics: Metrics) -> None:
        self._ws = websocket
        self._room = room
        self._grant = grant
        self._settings = settings
        self._metrics = metrics
        # The per-frame path avoids anyio streams: a deque and one event cost a fraction as
        # much, and the relay runs on asyncio anyway (uvicorn, aiosqlite).
        self._frames: deque[bytes] = deque()
        extensions = websocket.scope.get("extensions") or {}
        self._writer: FrameWriter | None = extensions.get(EXTENSION)
        """The socket's transport, for frames written whole (None: send through ASGI)."""
        self._inbox: Inbox | None = self._writer.open_inbox() if self._writer is not None else None
        """The peer's messages, straight from the WebSocket protocol (None: ASGI receive)."""
        self._tally = message_tally(metrics, "out")
        self._received = message_tally(metrics, "in")
        self._queued_bytes = 0
        """Bytes of ``_frames`` and of the frame the sender is handing to the WebSocket layer."""
        self._answer: bytes | None = None
        """Our sync step 2 answer while it is queued or being handed over."""
        self._step1: bytes | None = None
        """The latest state vector received while ``_answer`` was pending: answered after it."""
        self._writing = False
        self._limiter = TokenBucket(settings.rate_messages_per_second, settings.rate_burst)
        self._throttle = ByteThrottle(settings.rate_bytes_per_second, settings.rate_burst_bytes,
                                      waited=metrics.throttled_seconds.inc)
        self._scope = anyio.CancelScope()
        self.close_code: int | None = None
        self.hello = False
        """The peer sent ``hello``: it parses Syncline's extension messages (type 100)."""
        self.acks = False
        self.writes = 0
        """Writes (sync step 2 and update messages) received on this connection."""
        self._acked = 0
        self._processed = 0
        """The number of the last write handled (landed or held)."""
        self._held = HeldWrites(settings.held_updates_max, settings.held_updates_bytes)
        self._asked = False
        """A sync step 1 was sent for the held writes and no write has landed since."""
        # An asyncio lock: uncontended (the usual case) it costs a fifth of anyio's, which
        # checks the task's cancel scopes on every acquire; cancellation reaches a waiter all the same.
        self._write_lock = asyncio.Lock()
        self._room_advanced = asyncio.Event()
        self._finished = False
        """The receive loop has ended: the sender and the retrier return at their next wake-up."""
        self._helpers: TaskGroup | None = None
        """Where the sender and the retrier start, while the receive loop runs."""
        self._sender_started = self._retrier_started = False
        self._waiting_writable = False
        """The sender waits for the socket (or the ASGI server) to take more."""

    # -- Peer ------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        if self.close_code is not None:
            return
        writer = self._writer
        if writer is not None and not self._frames and writer.writable and frame is not self._answer:
            writer.write(binary_frame(frame))  # nothing queued before it: in order
            self._tally.add(1, len(frame))
            return
        queued = self._queued_bytes
        if len(self._frames) >= self._settings.send_queue_messages or (
            queued and queued + len(frame) > self._settings.send_queue_bytes
        ):
            self.abort(closecodes.SLOW_CONSUMER, "slow_consumer")
            return
        self._frames.append(frame)
        self._queued_bytes = queued + len(frame)
        self._start_sender()

    def abort(self, code: int, reason: str) -> None:
        """Stop this connection and close it with ``code``; only the first call counts.

        A room write under way is let finish (once submitted, an update is committed,
        integrated and forwarded together); the receive loop stops right after it.
        """
        if self.close_code is None:
            self.close_code = code
            self._queued_bytes -= sum(map(len, self._frames))
            self._frames.clear()
            self._answer = self._step1 = None
            if code not in (closecodes.NORMAL, closecodes.GOING_AWAY):
                self._metrics.rejected.labels(reason).inc()
                note_cause(reason, scope=self._ws.scope)  # the connection's access log line names it
            if not self._writing:
                self._scope.cancel()

    @property
    def writes_frames(self) -> bool:
        """Frames go straight to the socket's transport (:mod:`.wsprotocol`), not through ASGI sends."""
        return self._writer is not None

    @property
    def queued_bytes(self) -> int:
        """Bytes queued for this peer, waiting for its socket to drain (or for the sender task)."""
        return self._queued_bytes

    @property
    def tenant(self) -> str:
        """The tenant of this peer's token."""
        return self._grant.tenant

    @property
    def document(self) -> str:
        """The name of the document (room) this peer is connected to."""
        return self._room.name

    def notify(self, body: dict[str, object]) -> bool:
        """Send ``body`` as an extension message if this peer said ``hello`` (others could not
        parse it); True if it was queued."""
        if not self.hello or self.close_code is not None:
            return False
        self.send(protocol.extension(body))
        return self.close_code is None

    # -- lifecycle -----------------------------------------------------------------

    async def run(self) -> None:
        self._room.join(self)
        try:
            with self._scope:
                async with anyio.create_task_group() as tg:
                    self._helpers = tg
                    if self._frames:  # queued while joining the room
                        self._start_sender()
                    expiry = self._expiry()
                    try:
                        await self._receiver()
                    finally:
                        self._helpers = None
                        if expiry is not None:
                            expiry.cancel()
                    self._finish_helpers(tg)
        finally:
            self._room.leave(self)
            if self.close_code is not None and self._ws.application_state == WebSocketState.CONNECTED:
                with anyio.move_on_after(CLOSE_TIMEOUT_SECONDS, shield=True):
                    try:
                        await self._ws.close(self.close_code, closecodes.CLOSE_REASONS.get(self.close_code, ""))
                    except (WebSocketDisconnect, OSError, RuntimeError):
                        pass  # the client is already gone; nothing left to tell it

    def _expiry(self) -> asyncio.TimerHandle | None:
        """Close the peer with 4419 when its token's ``exp`` passes during the session."""
        expires_at = self._grant.expires_at
        if expires_at is None:
            return None
        loop = asyncio.get_running_loop()
        return loop.call_later(max(0.0, expires_at - time.time()), self.abort, closecodes.TOKEN_EXPIRED, "token_expired")

    def _start_sender(self) -> None:
        if not self._sender_started and self._helpers is not None:
            self._sender_started = True
            self._helpers.start_soon(self._sender)

    def _start_retrier(self) -> None:
        if not self._retrier_started and self._helpers is not None:
            self._retrier_started = True
            self._helpers.start_soon(self._retrier)

    def _finish_helpers(self, tg: TaskGroup) -> None:
        """Let the sender and the retrier return instead of cancelling them: a cancelled task
        keeps its CancelledError, whose traceback holds the task's frames, in a reference
        cycle, and this connection (its queues and buffers with it) would then wait for the
        cyclic garbage collector to be freed. A sender stuck on a full socket is cancelled."""
        self._finished = True
        self._room_advanced.set()
        if self._waiting_writable:
            tg.cancel_scope.cancel()

    async def _blocked_on(self, waiting: Awaitable[None]) -> None:
        """Await the socket (or the ASGI server) taking more; meanwhile the end of the
        connection cancels the sender instead of letting it return."""
        self._waiting_writable = True
        try:
            await waiting
        finally:
            self._waiting_writable = False

    async def _sender(self) -> None:
        """Hand the queued frames over until none is left, then end (the next queued frame
        starts a new sender): a connection whose queue is empty holds no sender task."""
        try:
            if self._writer is not None:
                await self._write_queued(self._writer)
            else:
                await self._send_queued()
        finally:
            self._sender_started = False

    async def _write_queued(self, writer: FrameWriter) -> None:
        """Write the queued frames to the transport whenever it is under its high-water mark."""
        frames = self._frames
        count = size = 0
        while frames and not self._finished:
            if not writer.writable:
                if count:
                    self._tally.add(count, size)
                    count = size = 0
                await self._blocked_on(writer.wait_writable())
                if writer.gone:
                    self._scope.cancel()  # the client went away with frames still queued
                    return
                continue
            frame = frames.popleft()
            writer.write(binary_frame(frame))
            self._queued_bytes -= len(frame)
            count += 1
            size += len(frame)
            if frame is self._answer:
                self._answered()
        if count:
            self._tally.add(count, size)

    async def _send_queued(self) -> None:
        """Hand the queued frames to the ASGI server one ``websocket.send`` at a time."""
        frames = self._frames
        count = size = 0
        try:
            while frames and not self._finished:  # frames queued while we await a send go out too
                frame = frames.popleft()
                await self._blocked_on(self._ws.send_bytes(frame))
                self._queued_bytes -= len(frame)
                if frame is self._answer:
                    self._answered()
                count += 1
                size += len(frame)
        except (WebSocketDisconnect, OSError, RuntimeError):
            self._scope.cancel()  # the client went away while we were sending
        if count:
            self._tally.add(count, size)

    async def _receiver(self) -> None:
        received = self._received
        next_message = self._inbox.get if self._inbox is not None else self._asgi_message
        while True:
            frame = await next_message()
            if frame is None:
                return
            if type(frame) is not bytes:
                self.abort(closecodes.INVALID_MESSAGE, "text_frame")
                return
            received.add(1, len(frame))
            if len(frame) > self._settings.max_message_bytes:
                self.abort(closecodes.TOO_LARGE, "too_large")
                return
            if not self._limiter.take():
                self.abort(closecodes.RATE_LIMITED, "rate_limited")
                return
            wait = self._throttle.delay(len(frame))
            if wait > 0:
                await self._throttle.pause(wait)  # over the byte rate: stop reading this socket a while
            try:
                message = protocol.decode(frame)
                await self._handle(message)
            except ProtocolError as exc:
                log.info("closing peer after a malformed frame", extra={"doc": self._room.name, "reason": exc.reason})
                self.abort(closecodes.INVALID_MESSAGE, "invalid_message")
                return
            except Exception:
                # A fault of ours, not the frame's: close with 1011 (documented) instead of letting the
                # exception escape to uvicorn, which drops the socket and the peer sees only 1006.
                log.exception("unexpected error while handling a frame", extra={"doc": self._room.name})
                self.abort(closecodes.INTERNAL_ERROR, "internal_error")
                return
            if self.close_code is not None:
                return

    async def _asgi_message(self) -> bytes | str | None:
        """The next message through ASGI ``receive`` (None: the peer is gone)."""
        event = await self._ws.receive()
        if event["type"] == "websocket.disconnect":
            return None
        data: bytes | None = event.get("bytes")
        return data if data is not None else str(event.get("text", ""))

    async def _handle(self, message: protocol.Message) -> None:
        kind = message.kind
        if kind is Kind.STEP1:
            self._step1_received(message.payload)
        elif message.is_write:
            await self._write(message.payload)
        elif kind is Kind.AWARENESS:
            if len(message.payload) > self._settings.awareness_max_bytes:
                self.abort(closecodes.TOO_LARGE, "awareness_too_large")
                return
            try:
                self._room.awareness(self, message.payload)
            except AwarenessOverShare:
                self.abort(closecodes.TOO_LARGE, "awareness_limit")
        elif kind is Kind.QUERY_AWARENESS:
            for frame in self._room.awareness_frames():
                self.send(frame)
        elif kind is Kind.EXTENSION:
            self._extension(protocol.decode_extension(message.payload))

    def _step1_received(self, state_vector: bytes) -> None:
        if self._answer is None:
            self._answer_step1(state_vector)
            return
        if self._queued_bytes + len(self._answer) > self._settings.send_queue_bytes:
            self.abort(closecodes.SLOW_CONSUMER, "slow_consumer")  # asks for a copy it has no room for
            return
        try:
            encode_diff(Doc(), state_vector)  # refused now (4400) as an answered one would be
        except InvalidStateVector as exc:
            raise ProtocolError(exc.reason) from exc
        self._step1 = state_vector  # replaces any earlier one: the latest request covers it

    def _answer_step1(self, state_vector: bytes) -> None:
        if self._queued_bytes >= self._settings.send_queue_bytes:
            self.abort(closecodes.SLOW_CONSUMER, "slow_consumer")  # no room for any answer: don't compute one
            return
        answer = self._answer = self._room.answer_step1(state_vector)
        self.send(answer)  # queued, also on the direct path: step 1s arriving meanwhile share the next answer
        if self.close_code is not None:
            self._answer = None

    def _answered(self) -> None:
        """Our answer is with the WebSocket layer: answer the step 1 that waited for it, if any."""
        self._answer = None
        state_vector, self._step1 = self._step1, None
        if state_vector is not None:
            try:
                self._answer_step1(state_vector)
            except ProtocolError:
                self.abort(closecodes.INVALID_MESSAGE, "invalid_message")

    async def _write(self, update: bytes) -> None:
        self.writes += 1
        number = self.writes
        if update != EMPTY_UPDATE and self._grant.read_only:
            self.abort(closecodes.READ_ONLY, "read_only")
            return
        async with self._write_lock:  # writes are processed, and acknowledged, in arrival order
            if update != EMPTY_UPDATE:  # nothing to store; y-websocket sends this on every sync
                self._writing = True  # abort() now lets the write finish instead of cancelling it halfway
                try:
                    landed = await self._submit(number, update)
                    if landed and self._held:
                        await self._retry_held()
                    elif not landed and len(self._held) > 1:
                        await self._land_held_together()
                finally:
                    self._writing = False
            self._processed = number
            if self.close_code is None:
                self._acknowledge()

    def room_advanced(self) -> None:
        self._room_advanced.set()

    async def _retrier(self) -> None:
        """Retry the held writes each time the room integrates something another peer sent;
        end once none is held (the next held write starts a new retrier). Whatever lands the
        last held write, this loop or this peer's own next write, wakes it to find nothing held
        (:meth:`_none_held`)."""
        try:
            while True:
                await self._room_advanced.wait()
                if self._finished:
                    return
                if not self._held:
                    self._room_advanced.clear()
                    return
                async with self._write_lock:
                    self._writing = True
                    try:
                        await self._retry_held()
                    finally:
                        self._writing = False
                    if self.close_code is None:
                        self._acknowledge()
                    else:
                        self._scope.cancel()
        finally:
            self._retrier_started = False

    async def _submit(self, number: int, update: bytes, *, retry: bool = False) -> bool:
        """Write ``update`` through the room: True once stored and integrated, False if not.

        An update that depends on clocks the room lacks is held, unless it is a ``retry`` of
        what is held already (one held write, or all of them merged into one): that stays
        held. Any other refusal closes this connection with the code of its cause."""
        try:
            await self._room.write(self, update, writer=self._grant.writer)
        except UpdateOutOfOrder as exc:
            if not retry:
                self._hold(number, update, exc)
            return False
        except InvalidUpdate as exc:
            if retry:
                return False  # a merge can pass a bound that none of its parts did: keep them held
            log.info("closing peer after an invalid update", extra={"doc": self._room.name, "reason": exc.reason})
            self.abort(closecodes.INVALID_UPDATE, "invalid_update")
        except ClientIdTaken as exc:
            log.warning("closing peer writing a client ID bound to another writer",
                        extra={"doc": self._room.name, "reason": f"client {exc.client}"})
            self.abort(closecodes.CLIENT_ID_TAKEN, "client_id_taken")
        except UpdateNotIntegrated:
            self.abort(closecodes.INTERNAL_ERROR, "not_integrated")  # the room logged it
        except StoreUnavailable:
            log.error("store unavailable; refusing the write", extra={"doc": self._room.name})
            self.abort(closecodes.STORE_UNAVAILABLE, "store_unavailable")
        except FanoutUnavailable as exc:
            log.error("fan-out unavailable; refusing the write", extra={"doc": self._room.name, "reason": exc.reason})
            self.abort(closecodes.FANOUT_UNAVAILABLE, "fanout_unavailable")
        else:
            self._asked = False
            return True
        return False

    def _hold(self, number: int, update: bytes, exc: UpdateOutOfOrder) -> None:
        if not self._held.fits(update):
            log.info("closing peer holding too many out-of-order updates", extra={"doc": self._room.name})
            self.abort(closecodes.OUT_OF_ORDER, "out_of_order")
            return
        self._held.add(number, update)
        self._room.wait_for_clocks(self, True)
        self._start_retrier()
        log.info("holding an update that arrived ahead of clocks it depends on",
                 extra={"doc": self._room.name, "reason": str(exc)})
        if not self._asked:
            self._asked = True  # the peer's step 2 answers with everything the room lacks
            self.send(protocol.sync_step1(self._room.state_vector()))

    async def _retry_held(self) -> None:
        """Write the held updates that the room can now integrate, until none can; then try
        what is still held as one update."""
        self._room_advanced.clear()  # this pass sees the room as it is; a later gain sets it again
        progress = True
        while progress and self._held and self.close_code is None:
            progress = False
            for number, update in self._held.writes():
                if self.close_code is not None:
                    return
                if await self._submit(number, update, retry=True):
                    self._held.remove(number)
                    progress = True
        if len(self._held) > 1 and self.close_code is None:
            await self._land_held_together()
        if not self._held:
            self._none_held()

    async def _land_held_together(self) -> None:
        merged = self._held.merged()
        if merged is not None and await self._submit(self._held.first or 0, merged, retry=True):
            self._held.clear()
            self._none_held()

    def _none_held(self) -> None:
        """The last held write landed: stop waiting on the room's clocks, and wake the retrier,
        if one runs, to find nothing held and end."""
        self._room.wait_for_clocks(self, False)
        if self._retrier_started:
            self._room_advanced.set()

    def _acknowledge(self) -> None:
        """Acknowledge the writes that landed, up to the first one still held."""
        first = self._held.first
        durable = first - 1 if first is not None else self._processed
        if self.acks and durable > self._acked:
            self.send(protocol.extension({"op": "ack", "n": durable}))
        self._acked = max(self._acked, durable)

    def _extension(self, body: dict[str, object]) -> None:
        if body["op"] == "hello":
            self.hello = True
            self.acks = body.get("acks") is True
            self.send(protocol.extension({"op": "welcome", "version": 1, "acks": self.acks, "writes": self.writes}))
        else:
            raise ProtocolError(f"unknown extension op {body['op']!r}")
