"""One WebSocket peer in one room: a receive loop and a sender task with a bounded queue.

The queue is bounded in messages (``send_queue_messages``) and in bytes (``send_queue_bytes``):
the bytes of queued frames and of the frame being handed to the WebSocket layer. A frame that
would take a non-empty queue over either bound drops the peer as a slow consumer (4408); one
frame of any size is queued when nothing else is (a big document's first sync step 2). Below
the queue, uvicorn writes a frame only while the socket's buffer is under its high-water mark
(64 KiB), so a peer that never reads holds at most its queue, one frame more and that mark.

A sync step 1 is answered only when the answer can be queued. While this connection's previous
answer is still queued, a new step 1 is not answered at once: its state vector waits (only the
latest one) and is answered when the previous answer has been handed over. The waiting answer
counts as the size of the previous one: if both do not fit the budget, the peer is dropped (4408).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

import anyio
from pycrdt import Doc
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from syncline.engine import InvalidStateVector, InvalidUpdate, encode_diff

from . import closecodes, protocol
from .auth import Grant
from .errors import AwarenessOverShare
from .fanout import FanoutUnavailable
from .metrics import Metrics
from .protocol import Kind, ProtocolError
from .room import EMPTY_UPDATE, Room
from .settings import Settings
from .store import StoreUnavailable

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
        self._queued_bytes = 0
        """Bytes of ``_frames`` and of the frame the sender is handing to the WebSocket layer."""
        self._answer: bytes | None = None
        """Our sync step 2 answer while it is queued or being handed over."""
        self._step1: bytes | None = None
        """The latest state vector received while ``_answer`` was pending: answered after it."""
        self._wakeup = asyncio.Event()
        self._writing = False
        self._limiter = TokenBucket(settings.rate_messages_per_second, settings.rate_burst)
        self._scope = anyio.CancelScope()
        self.close_code: int | None = None
        self.acks = False
        self.writes = 0

    # -- Peer ------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        if self.close_code is not None:
            return
        queued = self._queued_bytes
        if len(self._frames) >= self._settings.send_queue_messages or (
            queued and queued + len(frame) > self._settings.send_queue_bytes
        ):
            self.abort(closecodes.SLOW_CONSUMER, "slow_consumer")
            return
        self._frames.append(frame)
        self._queued_bytes = queued + len(frame)
        self._wakeup.set()

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
            if not self._writing:
                self._scope.cancel()

    # -- lifecycle -----------------------------------------------------------------

    async def run(self) -> None:
        self._room.join(self)
        try:
            with self._scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._sender)
                    if self._grant.expires_at is not None:
                        tg.start_soon(self._expire, self._grant.expires_at)
                    await self._receiver()
                    tg.cancel_scope.cancel()
        finally:
            self._room.leave(self)
            if self.close_code is not None and self._ws.application_state == WebSocketState.CONNECTED:
                with anyio.move_on_after(CLOSE_TIMEOUT_SECONDS, shield=True):
                    try:
                        await self._ws.close(self.close_code, closecodes.CLOSE_REASONS.get(self.close_code, ""))
                    except (WebSocketDisconnect, OSError, RuntimeError):
                        pass  # the client is already gone; nothing left to tell it

    async def _expire(self, expires_at: int) -> None:
        """Close the peer with 4419 when its token's ``exp`` passes during the session."""
        await anyio.sleep(max(0.0, expires_at - time.time()))
        self.abort(closecodes.TOKEN_EXPIRED, "token_expired")

    async def _sender(self) -> None:
        messages = self._metrics.messages.labels("out")
        sent_bytes = self._metrics.bytes.labels("out")
        frames = self._frames
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                count = size = 0
                while frames:  # frames queued while we await a send go out in the same wake-up
                    frame = frames.popleft()
                    await self._ws.send_bytes(frame)
                    self._queued_bytes -= len(frame)
                    if frame is self._answer:
                        self._answered()
                    count += 1
                    size += len(frame)
                messages.inc(count)
                sent_bytes.inc(size)
        except (WebSocketDisconnect, OSError, RuntimeError):
            self._scope.cancel()  # the client went away while we were sending

    async def _receiver(self) -> None:
        messages = self._metrics.messages.labels("in")
        received_bytes = self._metrics.bytes.labels("in")
        while True:
            event = await self._ws.receive()
            if event["type"] == "websocket.disconnect":
                return
            frame = event.get("bytes")
            if frame is None:
                self.abort(closecodes.INVALID_MESSAGE, "text_frame")
                return
            messages.inc()
            received_bytes.inc(len(frame))
            if len(frame) > self._settings.max_message_bytes:
                self.abort(closecodes.TOO_LARGE, "too_large")
                return
            if not self._limiter.take():
                self.abort(closecodes.RATE_LIMITED, "rate_limited")
                return
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
        answer = self._room.answer_step1(state_vector)
        self.send(answer)
        if self.close_code is None:
            self._answer = answer

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
        if update == EMPTY_UPDATE:
            self._acknowledge()  # nothing to store; y-websocket sends this on every sync
            return
        if self._grant.read_only:
            self.abort(closecodes.READ_ONLY, "read_only")
            return
        self._writing = True  # abort() waits for this write instead of cancelling it halfway
        try:
            await self._room.write(self, update)
        except InvalidUpdate as exc:
            log.info("closing peer after an invalid update", extra={"doc": self._room.name, "reason": exc.reason})
            self.abort(closecodes.INVALID_UPDATE, "invalid_update")
            return
        except StoreUnavailable:
            log.error("store unavailable; refusing the write", extra={"doc": self._room.name})
            self.abort(closecodes.STORE_UNAVAILABLE, "store_unavailable")
            return
        except FanoutUnavailable as exc:
            log.error("fan-out unavailable; refusing the write", extra={"doc": self._room.name, "reason": exc.reason})
            self.abort(closecodes.FANOUT_UNAVAILABLE, "fanout_unavailable")
            return
        finally:
            self._writing = False
        self._acknowledge()

    def _acknowledge(self) -> None:
        self.writes += 1
        if self.acks:
            self.send(protocol.extension({"op": "ack", "n": self.writes}))

    def _extension(self, body: dict[str, object]) -> None:
        if body["op"] == "hello":
            self.acks = body.get("acks") is True
            self.send(protocol.extension({"op": "welcome", "version": 1, "acks": self.acks, "writes": self.writes}))
        else:
            raise ProtocolError(f"unknown extension op {body['op']!r}")
