"""The y-websocket wire format, decoded strictly, plus Syncline's opt-in extension.

A frame is ``varuint type`` then a body:

* ``0`` sync: ``varuint subtype`` (0 step 1, 1 step 2, 2 update) + ``varbytes payload``
* ``1`` awareness: ``varbytes update``
* ``3`` query awareness: no body
* ``100`` Syncline extension: ``varbytes msgpack map`` (see docs/protocol.md)

Standard Yjs clients never send or receive type 100. Every malformed frame raises
:class:`~syncline.engine.errors.ProtocolError`, which the relay answers with close code 4400.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

import msgpack

from .errors import ProtocolError

MESSAGE_SYNC = 0
MESSAGE_AWARENESS = 1
MESSAGE_AUTH = 2
MESSAGE_QUERY_AWARENESS = 3
MESSAGE_EXTENSION = 100

SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2

MAX_EXTENSION_BYTES = 4096


class Kind(Enum):
    STEP1 = "sync step 1"
    STEP2 = "sync step 2"
    UPDATE = "update"
    AWARENESS = "awareness"
    QUERY_AWARENESS = "query awareness"
    EXTENSION = "extension"


class Message(NamedTuple):
    """One decoded message (a named tuple: one is made per message received, and a frozen
    dataclass's ``__init__`` costs twice as much)."""

    kind: Kind
    payload: bytes = b""

    @property
    def is_write(self) -> bool:
        return self.kind is Kind.STEP2 or self.kind is Kind.UPDATE


def read_varuint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode a lib0 varuint at ``pos``; return (value, next position)."""
    result = 0
    shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise ProtocolError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 49:  # lib0 varuints stop at 2**53
            raise ProtocolError("varint longer than 53 bits")


def read_varbytes(data: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = read_varuint(data, pos)
    end = pos + length
    if end > len(data):
        raise ProtocolError(f"length prefix {length} exceeds the {len(data) - pos} bytes left")
    return data[pos:end], end


def write_varuint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def varbytes(payload: bytes) -> bytes:
    return write_varuint(len(payload)) + payload


def decode(frame: bytes) -> Message:
    """Decode one frame; trailing bytes after a complete message are an error."""
    kind_code, pos = read_varuint(frame, 0)
    if kind_code == MESSAGE_SYNC:
        subtype, pos = read_varuint(frame, pos)
        kind = {SYNC_STEP1: Kind.STEP1, SYNC_STEP2: Kind.STEP2, SYNC_UPDATE: Kind.UPDATE}.get(subtype)
        if kind is None:
            raise ProtocolError(f"unknown sync message subtype {subtype}")
        payload, pos = read_varbytes(frame, pos)
    elif kind_code == MESSAGE_AWARENESS:
        kind = Kind.AWARENESS
        payload, pos = read_varbytes(frame, pos)
    elif kind_code == MESSAGE_QUERY_AWARENESS:
        kind, payload = Kind.QUERY_AWARENESS, b""
    elif kind_code == MESSAGE_EXTENSION:
        kind = Kind.EXTENSION
        payload, pos = read_varbytes(frame, pos)
    else:
        raise ProtocolError(f"unknown message type {kind_code}")
    if pos != len(frame):
        raise ProtocolError(f"{len(frame) - pos} trailing bytes after a {kind.value} message")
    return Message(kind, payload)


def sync_step1(state_vector: bytes) -> bytes:
    return bytes((MESSAGE_SYNC, SYNC_STEP1)) + varbytes(state_vector)


def sync_step2(update: bytes) -> bytes:
    return bytes((MESSAGE_SYNC, SYNC_STEP2)) + varbytes(update)


def sync_update(update: bytes) -> bytes:
    return bytes((MESSAGE_SYNC, SYNC_UPDATE)) + varbytes(update)


def awareness(update: bytes) -> bytes:
    return bytes((MESSAGE_AWARENESS,)) + varbytes(update)


def extension(body: dict[str, Any]) -> bytes:
    return write_varuint(MESSAGE_EXTENSION) + varbytes(msgpack.packb(body))


def decode_extension(payload: bytes) -> dict[str, Any]:
    """Decode an extension body: a msgpack map with a string ``op``."""
    if len(payload) > MAX_EXTENSION_BYTES:
        raise ProtocolError(f"extension message over {MAX_EXTENSION_BYTES} bytes")
    try:
        body = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ProtocolError(f"extension body is not msgpack: {exc}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("op"), str):
        raise ProtocolError("extension body must be a map with a string 'op'")
    return body


# -- awareness updates --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    client_id: int
    clock: int
    state: str
    """The JSON text of the client's state; ``"null"`` means the client left."""


def decode_awareness(update: bytes) -> list[AwarenessEntry]:
    count, pos = read_varuint(update, 0)
    if count > len(update):
        raise ProtocolError(f"awareness update claims {count} entries in {len(update)} bytes")
    entries = []
    for _ in range(count):
        client_id, pos = read_varuint(update, pos)
        clock, pos = read_varuint(update, pos)
        raw, pos = read_varbytes(update, pos)
        try:
            state = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("awareness state is not UTF-8") from exc
        _check_json(state)
        entries.append(AwarenessEntry(client_id, clock, state))
    if pos != len(update):
        raise ProtocolError("trailing bytes after awareness entries")
    return entries


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _check_json(state: str) -> None:
    """Refuse a state that is not JSON text: peers ``JSON.parse`` (or ``json.loads``) what we relay."""
    try:
        json.loads(state, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("awareness state is not JSON") from exc


def encode_awareness(entries: list[AwarenessEntry]) -> bytes:
    out = bytearray(write_varuint(len(entries)))
    for entry in entries:
        out += write_varuint(entry.client_id)
        out += write_varuint(entry.clock)
        out += varbytes(entry.state.encode("utf-8"))
    return bytes(out)
