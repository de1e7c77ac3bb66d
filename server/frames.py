"""Server WebSocket frames encoded once per broadcast, and the writer that puts them on a socket.

A room hands the same message (the same ``bytes`` object) to each of its peers in turn.
:func:`binary_frame` turns it into a complete WebSocket frame, header included (RFC 6455
section 5.2: FIN, binary opcode, unmasked as every server frame is, the 7-, 16- or 64-bit
length form), and remembers the last message it encoded, so a broadcast to N peers encodes
once and each peer writes the same frame bytes to its socket.

:class:`FrameWriter` is what a connection needs to write those bytes itself, under the
ASGI server, and to read its peer's messages from an :class:`~.inbox.Inbox` rather than ASGI
events: :mod:`.wsprotocol` gives one per WebSocket in the ASGI scope's extensions
(:data:`EXTENSION`). A server that does not offer it is served through ASGI sends and receives.
"""

from __future__ import annotations

from typing import Protocol

from .inbox import Inbox

EXTENSION = "syncline.frames"
"""The ASGI scope extension holding the connection's :class:`FrameWriter`."""

_FIN_BINARY = 0x82


def frame_header(length: int) -> bytes:
    """The header of an unmasked, final, binary frame of a ``length``-byte payload."""
    if length < 126:
        return bytes((_FIN_BINARY, length))
    if length < 65_536:
        return bytes((_FIN_BINARY, 126)) + length.to_bytes(2, "big")
    return bytes((_FIN_BINARY, 127)) + length.to_bytes(8, "big")


_last_message: bytes = b""
_last_frame: bytes = frame_header(0)


def binary_frame(message: bytes) -> bytes:
    """``message`` as one complete server frame; the same object twice in a row is encoded once.

    The cache holds the last message itself, so its identity cannot be reused by another object
    while it is cached (the event loop's one thread is the only caller).
    """
    global _last_message, _last_frame
    if message is not _last_message:
        _last_frame = frame_header(len(message)) + message
        _last_message = message
    return _last_frame


class FrameWriter(Protocol):
    """A WebSocket's transport, for complete frames written beside the ASGI server's own.

    Back-pressure is the transport's: ``writable`` is False from the moment its buffer passes
    the high-water mark until it drains below the low one.
    """

    @property
    def writable(self) -> bool:
        """The transport's write buffer is under its high-water mark and the socket is open."""
        ...

    @property
    def gone(self) -> bool:
        """The connection is closing or lost: nothing written now would reach the peer."""
        ...

    def write(self, frame: bytes) -> None:
        """Queue ``frame`` (complete, header included) on the transport, after everything before it
        (frames written in one turn of the event loop may reach the transport together at its end)."""
        ...

    async def wait_writable(self) -> None:
        """Return once ``writable`` or ``gone``."""
        ...

    def open_inbox(self) -> Inbox:
        """The connection's inbox, holding what arrived so far: every message, and the end of
        the connection, goes there from now on instead of to ASGI ``receive``."""
        ...
