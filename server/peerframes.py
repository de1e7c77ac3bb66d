"""A peer's bytes cut into whole WebSocket frames, so its binary messages skip the websockets parser.

Uvicorn's WebSocket protocol feeds every byte a peer sends to the websockets library's
parser, a generator that reads each frame field by field and builds a ``Frame`` object,
then dispatches it through uvicorn's handlers: about 9 us of Python per message. Nearly
every message a relay receives is one final, masked, binary frame. :func:`frame_at` reads a
frame's header where it starts, so :mod:`.wsprotocol` can unmask such a frame itself (the C
``apply_mask`` websockets itself uses) and hand the payload straight to the connection's
inbox, while every other frame (ping, pong, close, text, fragments, reserved bits, an
unmasked or oversized frame) goes to the websockets parser as before.

The parser is only ever handed whole frames, or everything from a frame's first byte on,
so it is always at a frame boundary when it is handed bytes. A frame cut short by the end
of the bytes received so far is held (:class:`HeldFrame`) until the rest arrives; a
frame's declared length is checked against the message size limit before anything is held.
"""

from __future__ import annotations

from websockets.frames import apply_mask

__all__ = ["BINARY", "CONTROL", "OTHER", "SHORT", "HeldFrame", "apply_mask", "frame_at"]

BINARY = 0
"""A final, masked binary frame with no reserved bit set: the relay reads it itself."""
CONTROL = 1
"""A final, masked ping, pong or close frame of at most 125 bytes: the parser reads it whole."""
OTHER = 2
"""Anything else: from here on the parser reads everything (it fails what is invalid)."""
SHORT = 3
"""The header is cut short: the bytes from the frame's start are needed up to ``frame_end``."""

_FIN_BINARY = 0x82
_FIN_CONTROL = frozenset((0x88, 0x89, 0x8A))


def frame_at(data: bytes, pos: int, max_size: int) -> tuple[int, int, int]:
    """The frame starting at ``data[pos]``: ``(kind, payload_start, frame_end)``.

    A :data:`BINARY` or :data:`CONTROL` frame whose ``frame_end`` is past ``len(data)`` is
    not all there yet. ``kind`` is :data:`SHORT` while the header itself is cut short (then
    ``frame_end`` is where the header's length field ends), and :data:`OTHER` for an
    unmasked frame or one longer than ``max_size``, which the parser refuses.
    """
    end = len(data)
    if end - pos < 2:
        return SHORT, 0, pos + 2
    first = data[pos]
    second = data[pos + 1]
    length = second & 0x7F
    if length < 126:
        start = pos + 6
    elif length == 126:
        if end - pos < 4:
            return SHORT, 0, pos + 4
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        start = pos + 8
    else:
        if end - pos < 10:
            return SHORT, 0, pos + 10
        length = int.from_bytes(data[pos + 2:pos + 10], "big")
        start = pos + 14
    if not second & 0x80 or length > max_size:
        return OTHER, start, start
    if first == _FIN_BINARY:
        return BINARY, start, start + length
    if first in _FIN_CONTROL and length <= 125:
        return CONTROL, start, start + length
    return OTHER, start, start + length


class HeldFrame:
    """The start of a frame whose rest has not arrived, and how many bytes make it whole."""

    __slots__ = ("_bytes", "_need")

    def __init__(self, data: bytes, need: int) -> None:
        self._bytes = bytearray(data)
        self._need = need

    def add(self, data: bytes) -> bytes | None:
        """Append ``data``; the bytes held so far once they reach the length needed, else None."""
        held = self._bytes
        held += data
        if len(held) < self._need:
            return None
        return bytes(held)
