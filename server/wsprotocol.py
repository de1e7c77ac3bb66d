"""The relay's WebSocket protocol: uvicorn's, guarded, offering its transport for whole frames.

:class:`FrameWebSocketProtocol` is :class:`~.deadlines.GuardedWebSocketProtocol` (uvicorn's
``websockets-sansio`` protocol) that, once it accepts a WebSocket handshake, puts a
:class:`TransportFrameWriter` in the ASGI scope's extensions under
:data:`~.frames.EXTENSION`. A connection then writes complete, pre-encoded frames
(:func:`~.frames.binary_frame`) straight to the socket's transport, with no ASGI message,
no per-recipient frame encoding and no wait on an event per frame; everything else
(the handshake, receiving, pings, the close handshake) stays uvicorn's.

Frames written this way and frames uvicorn writes (pongs, pings, the close frame) share one
transport and are written whole, each in one ``transport.write``, so they never interleave
within a frame, and the close frame the application sends goes after every data frame it
wrote before it.
"""

from __future__ import annotations

from typing import Any

from websockets.http11 import Request

from .deadlines import GuardedWebSocketProtocol
from .frames import EXTENSION


class TransportFrameWriter:
    """A :class:`~.frames.FrameWriter` on one uvicorn WebSocket protocol's transport."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: GuardedWebSocketProtocol) -> None:
        self._protocol = protocol

    @property
    def writable(self) -> bool:
        p = self._protocol
        return p.writable.is_set() and not p.close_sent and not p.transport.is_closing()

    @property
    def gone(self) -> bool:
        p = self._protocol
        return p.disconnected or p.close_sent or p.transport.is_closing()

    def write(self, frame: bytes) -> None:
        self._protocol.transport.write(frame)

    async def wait_writable(self) -> None:
        # uvicorn's own flag: cleared by pause_writing, set by resume_writing and by connection_lost.
        await self._protocol.writable.wait()


class FrameWebSocketProtocol(GuardedWebSocketProtocol):
    """Uvicorn's guarded WebSocket protocol, with a :class:`TransportFrameWriter` in each scope."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope: dict[str, Any] | None = getattr(self, "scope", None)  # set only when the handshake is accepted
        if scope is not None and self.response.status_code == 101:
            # The application task is created but has not run yet: it sees the extension.
            extensions: dict[str, Any] | None = scope.get("extensions")
            if extensions is None:
                extensions = scope["extensions"] = {}
            extensions[EXTENSION] = TransportFrameWriter(self)
