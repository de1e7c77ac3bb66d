"""The messages one WebSocket received, handed straight to its receive loop.

Under the relay's own WebSocket protocol (:mod:`.wsprotocol`) a connection reads its peer's
messages from an :class:`Inbox` that the protocol fills as it parses them, instead of from
ASGI ``websocket.receive`` events: no event dict, no ``asyncio.Queue``, no middleware or
Starlette wrapper per message, and no pause and resume of the socket's reading around every
message (uvicorn pauses after each one until the application asks for the next).

Reading is paused only while the inbox holds :data:`PAUSE_MESSAGES` messages or
:data:`PAUSE_BYTES` bytes, and resumed once the loop has taken them all: a peer that sends
faster than its writes are handled is held back by TCP, as under ASGI, with at most those
bounds (plus what one read of the socket carried) parsed ahead.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

PAUSE_MESSAGES = 16
PAUSE_BYTES = 256 * 1024


class Inbox:
    """Messages in arrival order (``bytes`` binary, ``str`` text), then the end of the connection.

    The protocol calls :meth:`put` for each message and :meth:`end` once with the close code
    (the peer's, or 1006 when the connection was lost); the receive loop calls :meth:`get`.
    """

    __slots__ = ("_bytes", "_messages", "_pause", "_paused", "_resume", "_waiter", "close_code")

    def __init__(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self._messages: deque[bytes | str] = deque()
        self._bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self._pause = pause
        self._resume = resume
        self._paused = False
        self.close_code: int | None = None
        """Set when the connection has ended: the peer's close code, or 1006."""

    def put(self, message: bytes | str) -> None:
        if self.close_code is not None:
            return  # nothing after the end
        self._messages.append(message)
        self._bytes += len(message)
        self._wake()
        if not self._paused and (len(self._messages) >= PAUSE_MESSAGES or self._bytes >= PAUSE_BYTES):
            self._paused = True
            self._pause()

    def end(self, code: int) -> None:
        if self.close_code is None:
            self.close_code = code
            self._wake()

    def reading_paused(self) -> None:
        """Reading was paused before this inbox opened: resume it once the inbox is empty (now, if it is)."""
        if self._messages:
            self._paused = True
        else:
            self._resume()

    async def get(self) -> bytes | str | None:
        """The next message; None once the connection has ended and every message was taken."""
        messages = self._messages
        while not messages:
            if self.close_code is not None:
                return None
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        message = messages.popleft()
        self._bytes -= len(message)
        if self._paused and not messages:
            self._paused = False
            self._resume()
        return message

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
