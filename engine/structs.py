"""A strict, bounded reader of Yjs v1 updates: what an update writes and what it needs.

:func:`read_update` decodes every byte of a v1 update (the lib0 encoding Yrs and Yjs 13
write) without integrating anything, and returns its :class:`UpdateShape`: the clock
ranges it writes per client, the clocks its items point at, and the ranges it deletes.
A relay uses the shape to refuse an update before any CRDT library sees it, to hold an
update whose dependencies have not arrived (:meth:`UpdateShape.missing`), and to see
which clients' clock ranges it writes (:meth:`UpdateShape.writes_beyond`).

The reader refuses, with :class:`InvalidUpdate`, anything Yjs and Yrs do not write:
trailing or missing bytes, unknown struct, type and value tags, parent flags other than
0 and 1, invalid UTF-8, a client listed twice, integers of more than 53
bits, and counts or lengths over :class:`StructLimits`. It allocates in proportion to
the bytes it reads, never to a count the bytes claim: every count is checked against
the limits and against the bytes left (each element takes at least one byte) before
any loop. The JSON text inside JSON, Embed and Format content is checked as UTF-8 only;
its JSON syntax is left to the CRDT library that integrates it.

Layout (v1)::

    update      = clients:uint {structs:uint client:uint clock:uint struct*} delete_set
    struct      = info:u8 (GC len:uint | Skip len:uint | item)       info & 31: 0 GC, 10 Skip
    item        = [origin:id if info & 0x80] [right_origin:id if info & 0x40]
                  [parent:(uint 1, string | uint 0, id) [parent_sub:string if info & 0x20]
                   if neither origin] content(info & 31)
    delete_set  = clients:uint {client:uint ranges:uint {clock:uint len:uint}}
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from .errors import InvalidUpdate

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer a lib0 variable-length integer may carry (JavaScript's safe integer)."""


@dataclass(frozen=True, slots=True)
class StructLimits:
    """Bounds on what one update may claim, refused beyond with :class:`InvalidUpdate`.

    The defaults are the numbers of Yjs's ``src/utils/limits.js`` (proposed in Yjs commit
    d88422fc, "security: add update size limits to prevent DOS attacks"). Yrs legitimately
    writes longer Deleted and GC structs when one transaction inserted more than
    ``max_length`` clocks of text that were then deleted; raise ``max_length`` for
    documents that hold such edits.
    """

    max_clients: int = 100_000
    """Clients with structs in one update (Yjs ``MAX_UPDATES``)."""
    max_structs: int = 100_000
    """Structs of one client in one update (Yjs ``MAX_STRUCTS``)."""
    max_length: int = 100_000
    """Clock length of one GC, Skip or Deleted struct (Yjs ``MAX_GC_LENGTH``, ``MAX_SKIP_LENGTH``)."""
    max_delete_ranges: int = 100_000
    """Delete ranges of one client in the delete set."""
    max_depth: int = 64
    """Nesting depth of arrays and objects inside one ``any`` value."""


DEFAULT_LIMITS = StructLimits()
TRUSTED_LIMITS = StructLimits(MAX_SAFE_INTEGER, MAX_SAFE_INTEGER, MAX_SAFE_INTEGER, MAX_SAFE_INTEGER, 1_000)
"""For bytes Yrs wrote itself (what a document reports it integrated, rows a node stored):
read exactly, but with no bound beyond the bytes present."""

Run = tuple[int, int, bool]
"""``(start clock, end clock, is_skip)``: a client's consecutive structs of one kind."""


class UpdateShape(NamedTuple):
    """What one update writes, points at and deletes, by client id.

    A named tuple, not a frozen dataclass: one is made per update the relay receives, and a
    frozen dataclass's ``__init__`` costs twice as much."""

    runs: dict[int, tuple[Run, ...]]
    """Per client, its structs as runs in clock order; adjacent non-skip structs form one run."""
    references: dict[int, int]
    """Per client, the highest clock + 1 that an item's origin, right origin or parent points at."""
    deletes: dict[int, int]
    """Per client, the highest clock + length of its delete ranges."""
    struct_count: int
    byte_size: int

    def state_vector(self) -> dict[int, int]:
        """The state vector of this update alone, as Yrs and Yjs compute it from the bytes
        (``pycrdt.get_state(update)``): per client whose structs start at clock 0, the end
        of its first run if that run is not a skip. A document that holds nothing else
        reports the same."""
        vector = {}
        for client, runs in self.runs.items():
            start, end, skip = runs[0]
            if start == 0 and not skip and end > 0:
                vector[client] = end
        return vector

    def clocks(self) -> dict[int, int]:
        """Per client, the end of its last non-skip run, wherever its structs start: a document
        that integrated all of this update has reached at least these clocks."""
        ends = {}
        for client, runs in self.runs.items():
            for _, end, skip in reversed(runs):  # in clock order: the last one ends furthest
                if not skip:
                    ends[client] = end
                    break
        return ends

    def writes_beyond(self, state: Mapping[int, int]) -> list[int]:
        """The clients some struct of which (skips included) ends past their clock in ``state``."""
        return [client for client, runs in self.runs.items() if runs[-1][1] > state.get(client, 0)]

    def missing(self, state: Mapping[int, int]) -> dict[int, int]:
        """What a document at ``state`` lacks to integrate all of this update now: per client,
        the clock its state must reach first. Empty when the update is integrable.

        Each client's runs are walked from its clock in ``state``: a run that starts past
        the clock reached is a gap; a non-skip run advances the clock, a skip run does not.
        Every reference and every deleted range must then end at or below the clock reached
        for its client (so an item may point into this update's own structs).
        """
        reached = dict(state)
        needs: dict[int, int] = {}
        for client, runs in self.runs.items():
            cursor = state.get(client, 0)
            for start, end, skip in runs:
                if start > cursor:
                    needs[client] = start
                    break
                if not skip and end > cursor:
                    cursor = end
            reached[client] = cursor
        for wanted in (self.references, self.deletes):
            for client, clock in wanted.items():
                if clock > reached.get(client, 0) and clock > needs.get(client, 0):
                    needs[client] = clock
        return needs


def read_update(data: bytes, *, limits: StructLimits = DEFAULT_LIMITS) -> UpdateShape:
    """Decode the v1 update ``data`` whole and return its shape.

    Raises :class:`InvalidUpdate` (with the byte offset in its reason) unless ``data`` is
    exactly one well-formed v1 update within ``limits``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidUpdate(f"expected bytes, got {type(data).__name__}")
    reader = _Reader(data if type(data) is bytes else bytes(data), limits)
    runs, references, structs = reader.structs()
    deletes = reader.delete_set()
    if reader.pos != reader.end:
        raise InvalidUpdate(f"{reader.end - reader.pos} trailing bytes after the update at byte {reader.pos}")
    # tuple.__new__ skips the named tuple's own __new__, a Python function
    return tuple.__new__(UpdateShape, (runs, references, deletes, structs, reader.end))


def read_trusted_update(data: bytes) -> UpdateShape:
    """:func:`read_update` with :data:`TRUSTED_LIMITS`."""
    return read_update(data, limits=TRUSTED_LIMITS)


_GC, _DELETED, _JSON, _BINARY, _STRING, _EMBED, _FORMAT, _TYPE, _ANY, _DOC, _SKIP = range(11)
_XML_ELEMENT, _XML_HOOK, _LAST_TYPE_REF = 3, 5, 6
_ORIGIN, _RIGHT_ORIGIN, _PARENT_SUB = 0x80, 0x40, 0x20
# lib0 ``any`` tags
_UNDEFINED, _NULL, _VARINT, _FLOAT32, _FLOAT64, _BIGINT, _FALSE, _TRUE = 127, 126, 125, 124, 123, 122, 121, 120
_ANY_STRING, _ANY_OBJECT, _ANY_ARRAY, _ANY_BYTES = 119, 118, 117, 116
_FIXED_WIDTH = {_FLOAT32: 4, _FLOAT64: 8, _BIGINT: 8}
_CONSTANTS = frozenset((_UNDEFINED, _NULL, _FALSE, _TRUE))
_SIMPLE_WIDTH = {**_FIXED_WIDTH, **dict.fromkeys(_CONSTANTS, 0)}
"""Bytes after the tag of an ``any`` value that is neither a string, a variable-length
integer nor a container."""
_NOT_ASTRAL_LEADS = bytes(range(0xF0)) + bytes(range(0xF5, 0x100))
_UINT64 = struct.Struct("<Q").unpack_from


class _Reader:
    """A cursor over the bytes; every read checks the bytes left and raises InvalidUpdate.

    The struct and delete-set loops read with a local position and inline the common cases
    (one-byte integers, ASCII strings, one simple ``any`` value); anything else, errors
    included, goes through the general methods below from the same position, so an input
    gives the same shape or the same error either way."""

    __slots__ = ("data", "end", "limits", "pos")

    def __init__(self, data: bytes, limits: StructLimits) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.limits = limits

    # -- primitives ----------------------------------------------------------------

    def fail(self, reason: str, at: int | None = None) -> InvalidUpdate:
        return InvalidUpdate(f"{reason} at byte {self.pos if at is None else at}")

    def uint(self) -> int:
        """A lib0 variable-length unsigned integer of at most 53 bits."""
        data, pos, end = self.data, self.pos, self.end
        if pos >= end:
            raise self.fail("truncated")
        byte = data[pos]
        if byte < 0x80:
            self.pos = pos + 1
            return byte
        if pos + 1 < end and data[pos + 1] < 0x80:
            self.pos = pos + 2
            return (byte & 0x7F) | data[pos + 1] << 7
        if end - pos >= 8:
            word: int = _UINT64(data, pos)[0]
            if word & 0x8080808080808080 == 0x0080808080808080:  # 8 bytes, as most 53-bit client ids
                word = (word & 0x007F007F007F007F) | ((word & 0x7F007F007F007F00) >> 1)
                word = (word & 0x00003FFF00003FFF) | ((word & 0x3FFF00003FFF0000) >> 2)
                word = (word & 0x000000000FFFFFFF) | ((word & 0x0FFFFFFF00000000) >> 4)
                if word <= MAX_SAFE_INTEGER:
                    self.pos = pos + 8
                    return word
        return self._long_uint(pos)

    def _long_uint(self, start: int) -> int:
        result = shift = 0
        for byte in self.data[start:start + 8]:
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                if result > MAX_SAFE_INTEGER:
                    break
                self.pos = start + 1 + shift // 7
                return result
            shift += 7
        return self._checked_long_uint(start)  # cut short, too long or too large: say which

    def _checked_long_uint(self, start: int) -> int:
        data, pos, end = self.data, start, self.end
        result = shift = 0
        while True:
            if pos >= end:
                raise self.fail("truncated variable-length integer", start)
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if result > MAX_SAFE_INTEGER:
                raise self.fail("variable-length integer over 53 bits", start)
            if byte < 0x80:
                self.pos = pos
                return result
            shift += 7
            if shift > 49:  # 53 bits never need more than 8 bytes
                raise self.fail("variable-length integer longer than 8 bytes", start)

    def count(self, what: str, limit: int) -> int:
        """A count of elements that each take at least one byte: within ``limit`` and the bytes left."""
        at = self.pos
        value = self.uint()
        if value > limit:
            raise self.fail(f"{value} {what} exceeds the limit of {limit}", at)
        if value > self.end - self.pos:
            raise self.fail(f"{value} {what} claimed with {self.end - self.pos} bytes left", at)
        return value

    def length(self, what: str) -> int:
        """The clock length of a GC, Skip or Deleted struct: at most ``max_length``. It may be 0:
        Yrs writes a Deleted struct of length 0 for a deleted empty String item."""
        at = self.pos
        value = self.uint()
        if value > self.limits.max_length:
            raise self.fail(f"{what} length {value} exceeds the limit of {self.limits.max_length}", at)
        return value

    def take(self, size: int) -> int:
        """Skip ``size`` bytes; return where they start."""
        start = self.pos
        if size > self.end - start:
            raise self.fail(f"{size} bytes claimed with {self.end - start} bytes left")
        self.pos = start + size
        return start

    def string(self) -> None:
        """A length-prefixed UTF-8 string, checked and skipped."""
        data, pos = self.data, self.pos
        if pos < self.end and data[pos] < 0x80:
            size, start = data[pos], pos + 1
        else:
            size = self.uint()
            start = self.pos
        stop = start + size
        if stop > self.end:
            raise self.fail(f"{size} bytes claimed with {self.end - start} bytes left", start)
        raw = data[start:stop]
        if not raw.isascii():
            try:
                raw.decode()
            except UnicodeDecodeError as exc:
                raise self.fail(f"invalid UTF-8 ({exc.reason})", start + exc.start) from exc
        self.pos = stop

    def utf16_length(self) -> int:
        """A String content's clock length: the UTF-16 length of its text."""
        size = self.uint()
        start = self.take(size)
        raw = self.data[start:self.pos]
        if raw.isascii():
            return size
        try:
            text = raw.decode()
        except UnicodeDecodeError as exc:
            raise self.fail(f"invalid UTF-8 ({exc.reason})", start + exc.start) from exc
        # A character outside the BMP (4 UTF-8 bytes, lead byte 0xF0..0xF4) takes two UTF-16 units.
        return len(text) + len(raw.translate(None, _NOT_ASTRAL_LEADS))

    def varint(self) -> None:
        """A lib0 signed variable-length integer (sign in bit 6 of the first byte)."""
        start = self.pos
        if start >= self.end:
            raise self.fail("truncated")
        first = self.data[start]
        self.pos = start + 1
        if first & 0x80:
            value = self._long_uint(self.pos)
            if value > MAX_SAFE_INTEGER >> 6:
                raise self.fail("variable-length integer over 53 bits", start)

    def values(self, count: int) -> None:
        """``count`` lib0 ``any`` values, read with a stack of open arrays and objects (no recursion)."""
        data, end, max_depth = self.data, self.end, self.limits.max_depth
        stack: list[tuple[int, bool]] = []  # (values left, is an object) of each enclosing container
        left, in_object = count, False
        pos = self.pos
        while True:
            if not left:
                if not stack:
                    self.pos = pos
                    return
                left, in_object = stack.pop()
                continue
            left -= 1
            if in_object:  # the key
                if pos < end and (size := data[pos]) < 0x80 and (stop := pos + 1 + size) <= end \
                        and data[pos + 1:stop].isascii():
                    pos = stop
                else:
                    self.pos = pos
                    self.string()
                    pos = self.pos
            at = pos
            if at >= end:
                raise self.fail("truncated", at)
            tag = data[at]
            pos = at + 1
            if tag in _CONSTANTS:
                continue
            width = _FIXED_WIDTH.get(tag)
            if width is not None and width <= end - pos:
                pos += width
                continue
            self.pos = pos
            if tag == _ANY_STRING:
                self.string()
            elif tag == _VARINT:
                self.varint()
            elif width is not None:
                self.take(width)
            elif tag == _ANY_OBJECT or tag == _ANY_ARRAY:
                if len(stack) >= max_depth:
                    raise self.fail(f"values nested deeper than {max_depth}", at)
                stack.append((left, in_object))
                left = self.count("array elements" if tag == _ANY_ARRAY else "object entries", MAX_SAFE_INTEGER)
                in_object = tag == _ANY_OBJECT
            elif tag == _ANY_BYTES:
                self.take(self.uint())
            else:
                raise self.fail(f"unknown value tag {tag}", at)
            pos = self.pos

    # -- structs -------------------------------------------------------------------

    def structs(self) -> tuple[dict[int, tuple[Run, ...]], dict[int, int], int]:
        data, end, limits = self.data, self.end, self.limits
        max_clients, max_structs = limits.max_clients, limits.max_structs
        runs: dict[int, tuple[Run, ...]] = {}
        references: dict[int, int] = {}
        seen: set[int] = set()
        total = 0
        pos = self.pos
        if pos < end and (clients := data[pos]) < 0x80 and clients <= max_clients and clients < end - pos:
            pos += 1
        else:
            clients = self.count("clients", max_clients)
            pos = self.pos
        for _ in range(clients):
            if pos < end and (count := data[pos]) < 0x80 and count <= max_structs and count < end - pos:
                pos += 1
            else:
                self.pos = pos
                count = self.count("structs", max_structs)
                pos = self.pos
            at = self.pos = pos
            client = self.uint()
            if client in seen:
                raise self.fail(f"client {client} listed twice", at)
            seen.add(client)
            pos = self.pos
            if pos < end and (clock := data[pos]) < 0x80:
                pos += 1
            else:
                clock = self.uint()
                pos = self.pos
            total += count
            client_runs: list[Run] = []
            run_start, run_skip = clock, False
            for index in range(count):
                at = pos
                if at >= end:
                    raise self.fail("truncated", at)
                info = data[at]
                ref = info & 0x1F
                pos = at + 1
                if ref == _GC or ref == _SKIP:
                    kind = "GC" if ref == _GC else "Skip"
                    if info != ref:
                        raise self.fail(f"flags {info & 0xE0:#x} on a {kind} struct", at)
                    self.pos = pos
                    length, skip = self.length(kind), ref == _SKIP
                    pos = self.pos
                else:
                    if ref > _DOC:
                        raise self.fail(f"unknown struct ref {ref}", at)
                    skip = False
                    if info & (_ORIGIN | _RIGHT_ORIGIN):
                        self.pos = pos
                        if info & _ORIGIN:
                            self.reference(references)
                        if info & _RIGHT_ORIGIN:
                            self.reference(references)
                        pos = self.pos
                    else:  # the parent, a root type's name (flag 1) or an item's id (flag 0), and a map key
                        if pos + 1 < end and data[pos] == 1 and (size := data[pos + 1]) < 0x80 \
                                and (stop := pos + 2 + size) <= end and data[pos + 2:stop].isascii():
                            pos = stop
                        else:
                            self.pos = pos
                            self.parent(references)
                            pos = self.pos
                        if info & _PARENT_SUB:
                            if pos < end and (size := data[pos]) < 0x80 and (stop := pos + 1 + size) <= end \
                                    and data[pos + 1:stop].isascii():
                                pos = stop
                            else:
                                self.pos = pos
                                self.string()
                                pos = self.pos
                    if ref == _ANY and pos + 1 < end and data[pos] == 1 \
                            and (width := _SIMPLE_WIDTH.get(data[pos + 1])) is not None \
                            and (stop := pos + 2 + width) <= end:
                        length, pos = 1, stop
                    elif ref == _STRING and pos < end and (length := data[pos]) < 0x80 \
                            and (stop := pos + 1 + length) <= end and data[pos + 1:stop].isascii():
                        pos = stop
                    else:
                        self.pos = pos
                        length = self.utf16_length() if ref == _STRING else self.content(ref)
                        pos = self.pos
                if index and skip != run_skip:
                    client_runs.append((run_start, clock, run_skip))
                    run_start = clock
                run_skip = skip
                clock += length
                if clock > MAX_SAFE_INTEGER:
                    raise self.fail(f"client {client}'s clock passes 2**53", at)
            if count:
                if client_runs:
                    client_runs.append((run_start, clock, run_skip))
                    runs[client] = tuple(client_runs)
                else:
                    runs[client] = ((run_start, clock, run_skip),)
        self.pos = pos
        return runs, references, total

    def parent(self, references: dict[int, int]) -> None:
        """An item's parent, when it has no origin: flag 1 and a root type's name, or 0 and an id."""
        parent_at = self.pos
        parent = self.uint()
        if parent == 1:
            self.string()
        elif parent == 0:
            self.reference(references)
        else:
            raise self.fail(f"parent flag {parent} is neither 0 nor 1", parent_at)

    def reference(self, references: dict[int, int]) -> None:
        client = self.uint()
        end = self.uint() + 1
        if end > references.get(client, 0):
            references[client] = end
        if end > MAX_SAFE_INTEGER:
            raise self.fail("referenced clock passes 2**53")

    def content(self, ref: int) -> int:
        """An item's content; return its clock length."""
        if ref == _STRING:
            length = self.utf16_length()
        elif ref == _ANY:
            length = self.count("values", MAX_SAFE_INTEGER)
            self.values(length)
        elif ref == _JSON:
            length = self.count("JSON values", MAX_SAFE_INTEGER)
            for _ in range(length):
                self.string()
        elif ref == _DELETED:
            return self.length("Deleted")
        else:
            self.single_content(ref)
            return 1
        return length  # may be 0: Yrs writes empty String items when it splits text

    def single_content(self, ref: int) -> None:
        if ref == _BINARY:
            self.take(self.uint())
        elif ref == _EMBED:
            self.string()
        elif ref == _FORMAT:
            self.string()
            self.string()
        elif ref == _TYPE:
            at = self.pos
            type_ref = self.uint()
            if type_ref > _LAST_TYPE_REF:
                raise self.fail(f"unknown type ref {type_ref}", at)
            if type_ref in (_XML_ELEMENT, _XML_HOOK):
                self.string()
        else:  # _DOC
            self.string()
            self.values(1)

    # -- delete set ----------------------------------------------------------------

    def delete_set(self) -> dict[int, int]:
        data, end, max_clients = self.data, self.end, self.limits.max_clients
        deletes: dict[int, int] = {}
        pos = self.pos
        if pos < end and (clients := data[pos]) < 0x80 and clients <= max_clients and clients < end - pos:
            self.pos = pos + 1
        else:
            clients = self.count("delete-set clients", max_clients)
        for _ in range(clients):
            client = self.uint()
            ranges = self.count("delete ranges", self.limits.max_delete_ranges)
            pos = self.pos
            for _ in range(ranges):
                if pos + 1 < end and data[pos] < 0x80 and data[pos + 1] < 0x80:
                    stop = data[pos] + data[pos + 1]
                    pos += 2
                else:
                    at = self.pos = pos
                    stop = self.uint() + self.uint()
                    if stop > MAX_SAFE_INTEGER:
                        raise self.fail("delete range passes 2**53", at)
                    pos = self.pos
                if stop > deletes.get(client, 0):
                    deletes[client] = stop
            self.pos = pos
        return deletes
