"""The relay's WebSocket protocol: uvicorn's, guarded, offering its transport for whole frames.

:class:`FrameWebSocketProtocol` is :class:`~.deadlines.GuardedWebSocketProtocol` (uvicorn's
``websockets-sansio`` protocol) that, once it accepts a WebSocket handshake, puts a
:class:`TransportFrameWriter` in the ASGI scope's extensions under
:data:`~.frames.EXTENSION`. A connection then writes complete, pre-encoded frames
(:func:`~.frames.binary_frame`) straight to the socket's transport, with no ASGI message,
no per-recipient frame encoding and no wait on an event per frame. The same writer opens the
connection's :class:`~.inbox.Inbox`: from then on the messages uvicorn parses go straight into
it, and the end of the connection (the peer's close, a lost socket, a keepalive timeout, the
server shutting down) ends it, instead of ASGI ``websocket.receive`` and
``websocket.disconnect`` events. From the handshake on, the protocol cuts the peer's bytes
into frames itself (:mod:`.peerframes`): a whole, final, masked binary frame is unmasked and
put in the inbox without the websockets parser; every other frame goes to that parser, whole
or with everything after it. Everything else (the handshake, pings, the close handshake,
refusing bad frames) stays uvicorn's and the websockets library's.

Frames written to one peer during one turn of the event loop go out together, in one
``transport.write`` at the end of that turn (:class:`TurnWrites`): a group commit wakes the
writers of every update it stored in the same turn, so a peer of a busy room is sent their
broadcasts in one system call instead of one each. Frames past :data:`FLUSH_BYTES` go at
once, so the transport's buffer, and with it back-pressure, sees every frame within that
bound. Frames uvicorn writes (pongs, pings, the close frame) share the transport and are
written whole too, so nothing interleaves within a frame; the relay's frames pending when the
application sends its close are written before it, and those still pending once a close was
sent or the transport is closing are dropped (a peer is sent nothing after a close).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState
from websockets.http11 import Request
from websockets.protocol import State

from .access import note_close
from .deadlines import GuardedWebSocketProtocol
from .frames import EXTENSION
from .inbox import Inbox
from .peerframes import BINARY, OTHER, SHORT, HeldFrame, apply_mask, frame_at


log = logging.getLogger("syncline.wsprotocol")

FLUSH_BYTES = 64 * 1024
"""Frames pending for one peer past this many bytes are written at once, not at the end of the turn."""


class TurnWrites:
    """The writers holding frames written during the current turn of one event loop: one
    callback, scheduled by the first of them, writes every writer's frames at the end of the turn."""

    __slots__ = ("_writers",)

    def __init__(self) -> None:
        self._writers: list[TransportFrameWriter] = []

    def add(self, writer: TransportFrameWriter) -> None:
        """Called on the loop the writer belongs to (no reference to the loop is kept: see
        :func:`turn_writes`)."""
        if not self._writers:
            asyncio.get_running_loop().call_soon(self._flush)
        self._writers.append(writer)

    def _flush(self) -> None:
        writers, self._writers = self._writers, []
        for writer in writers:
            try:
                writer.flush()
            except Exception:  # one transport's fault must not keep the others' frames
                log.exception("writing frames to a peer's transport failed")


_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TurnWrites] = weakref.WeakKeyDictionary()


def turn_writes(loop: asyncio.AbstractEventLoop) -> TurnWrites:
    """The :class:`TurnWrites` of ``loop`` (one per loop, forgotten with the loop)."""
    turn = _turns.get(loop)
    if turn is None:
        turn = _turns[loop] = TurnWrites()
    return turn


class TransportFrameWriter:
    """A :class:`~.frames.FrameWriter` on one uvicorn WebSocket protocol's transport; frames
    written in one turn of the loop go to the transport together at its end (see the module)."""

    __slots__ = ("_pending", "_pending_bytes", "_protocol", "_turn")

    def __init__(self, protocol: GuardedWebSocketProtocol, turn: TurnWrites) -> None:
        self._protocol = protocol
        self._turn = turn
        self._pending: list[bytes] | None = None
        self._pending_bytes = 0

    @property
    def writable(self) -> bool:
        p = self._protocol
        return p.writable.is_set() and not p.close_sent and not p.transport.is_closing()

    @property
    def gone(self) -> bool:
        p = self._protocol
        return p.disconnected or p.close_sent or p.transport.is_closing()

    def write(self, frame: bytes) -> None:
        pending = self._pending
        if pending is None:
            self._pending = [frame]
            self._pending_bytes = len(frame)
            self._turn.add(self)
        else:
            pending.append(frame)
            self._pending_bytes += len(frame)
        if self._pending_bytes > FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write the pending frames now, in one ``transport.write``; drop them if a close was sent
        or the transport is closing."""
        pending, self._pending = self._pending, None
        if pending:
            p = self._protocol
            if not (p.close_sent or p.transport.is_closing()):
                p.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    async def wait_writable(self) -> None:
        # uvicorn's own flag: cleared by pause_writing, set by resume_writing and by connection_lost.
        await self._protocol.writable.wait()

    def open_inbox(self) -> Inbox:
        return self._protocol.open_inbox()


class _AppEvents(asyncio.Queue):  # type: ignore[type-arg]
    """Uvicorn's queue of ASGI events for the application; once the connection's inbox is open,
    each ``websocket.disconnect`` (from any of uvicorn's paths) also ends the inbox."""

    def __init__(self, protocol: FrameWebSocketProtocol) -> None:
        super().__init__()
        self._protocol = protocol

    def put_nowait(self, item: Any) -> None:
        if self._protocol.inbox is not None and item["type"] == "websocket.disconnect":
            self._protocol.deliver(item)
        super().put_nowait(item)


class FrameWebSocketProtocol(GuardedWebSocketProtocol):
    """Uvicorn's guarded WebSocket protocol, with a :class:`TransportFrameWriter` in each scope."""

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.queue = _AppEvents(self)
        self.inbox: Inbox | None = None
        """Where received messages go once the application opened it (else uvicorn's queue)."""
        self.frame_writer: TransportFrameWriter | None = None
        self._cutting = False
        """Whether this protocol cuts the peer's bytes into frames itself (see :mod:`.peerframes`)."""
        self._request_tail = b""
        self._held: HeldFrame | None = None
        self._max_size = config.ws_max_size
        self._can_cut = not config.ws_per_message_deflate  # compressed frames are the parser's

    def data_received(self, data: bytes) -> None:
        if self._cutting:
            self._cut(data)
        elif self.handshake_initiated or not self._can_cut:
            super().data_received(data)
        else:
            seen = self._request_tail + data
            super().data_received(data)
            if self.handshake_initiated:
                # The parser reads frames right after the request's blank line, so it is at a
                # frame boundary with nothing buffered when that line ends these bytes exactly.
                self._cutting = seen.find(b"\r\n\r\n") == len(seen) - 4
            else:
                self._request_tail = seen[-3:]

    def _cut(self, data: bytes) -> None:
        """Read the whole binary frames in ``data`` (after what is held) into the inbox, and
        hand every other frame to the parser: whole, or with everything after it."""
        held = self._held
        if held is not None:
            joined = held.add(data)
            if joined is None:
                return
            self._held = None
            data = joined
        pos, end, max_size, conn = 0, len(data), self._max_size, self.conn
        while pos < end:
            kind, start, frame_end = frame_at(data, pos, max_size)
            if kind == SHORT or (kind != OTHER and frame_end > end):
                self._held = HeldFrame(data[pos:], frame_end - pos)
                return
            if kind == OTHER or conn.state is not State.OPEN:
                self._cutting = False
                super().data_received(data[pos:] if pos else data)
                return
            if kind == BINARY and self.inbox is not None:
                self.inbox.put(apply_mask(data[start:frame_end], data[start - 4:start]))
            else:  # a control frame, or a message before the application opened its inbox
                super().data_received(data[pos:frame_end])
            pos = frame_end

    def open_inbox(self) -> Inbox:
        """Move what uvicorn queued for the application into a new inbox, which from now on
        receives every message and the end of the connection."""
        if self.inbox is None:
            self.inbox = Inbox(self._pause_reading, self._resume_reading)
            while not self.queue.empty():
                self.deliver(self.queue.get_nowait())
            if self.read_paused:  # uvicorn pauses after each message it queues
                self.inbox.reading_paused()
        return self.inbox

    def deliver(self, event: Any) -> None:
        """Put an ASGI receive or disconnect event into the inbox; a disconnect's code also goes
        to the connection's access log line (the access middleware sees no ASGI receive here)."""
        assert self.inbox is not None
        if event["type"] == "websocket.receive":
            data = event.get("bytes")
            self.inbox.put(data if data is not None else event.get("text", ""))
        elif event["type"] == "websocket.disconnect":
            code = event.get("code", 1005)
            self.inbox.end(code)
            note_close(code, scope=self.scope)

    def send_receive_event_to_app(self) -> None:
        inbox = self.inbox
        if inbox is None:
            super().send_receive_event_to_app()
            return
        frames, self.frames = self.frames, []
        if self.close_sent:
            return  # past the application's close: discarded, as uvicorn does
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        inbox.put(bytes(data) if self.curr_msg_data_type == "bytes" else bytes(data).decode("utf-8", "replace"))

    def _pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope: dict[str, Any] | None = getattr(self, "scope", None)  # set only when the handshake is accepted
        if scope is not None and self.response.status_code == 101:
            # The application task is created but has not run yet: it sees the extension.
            extensions: dict[str, Any] | None = scope.get("extensions")
            if extensions is None:
                extensions = scope["extensions"] = {}
            self.frame_writer = TransportFrameWriter(self, turn_writes(self.loop))
            extensions[EXTENSION] = self.frame_writer

    async def send(self, message: Any) -> None:
        """The application's ASGI send (its close, on this path): the frames it wrote first go first."""
        if self.frame_writer is not None:
            self.frame_writer.flush()
        await super().send(message)
