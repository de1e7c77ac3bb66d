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
            written = [end for _, end, skip in runs if not skip]
            if written:
                ends[client] = max(written)
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
    reader = _Reader(bytes(data), limits)
    runs, references, structs = reader.structs()
    deletes = reader.delete_set()
    if reader.pos != reader.end:
        raise InvalidUpdate(f"{reader.end - reader.pos} trailing bytes after the update at byte {reader.pos}")
    return UpdateShape(runs, references, deletes, structs, reader.end)


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
_ASTRAL_LEADS = (b"\xf0", b"\xf1", b"\xf2", b"\xf3", b"\xf4")


class _Reader:
    """A cursor over the bytes; every read checks the bytes left and raises InvalidUpdate."""

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
        pos = self.pos
        if pos >= self.end:
            raise self.fail("truncated")
        byte = self.data[pos]
        if byte < 0x80:
            self.pos = pos + 1
            return byte
        return self._long_uint(pos)

    def _long_uint(self, start: int) -> int:
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
        """A length-prefixed UTF-8 string, checked and skipped (the hottest read: inlined)."""
        data, pos = self.data, self.pos
        if pos < self.end and data[pos] < 0x80:
            size, start = data[pos], pos + 1
        else:
            size = self.uint()
            start = self.pos
        stop = start + size
        if stop > self.end:
            raise self.fail(f"{size} bytes claimed with {self.end - start} bytes left", start)
        try:
            data[start:stop].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"invalid UTF-8 ({exc.reason})", start + exc.start) from exc
        self.pos = stop

    def utf16_length(self) -> int:
        """A String content's clock length: the UTF-16 length of its text."""
        size = self.uint()
        start = self.take(size)
        data, end = self.data, self.pos
        try:
            text = data[start:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"invalid UTF-8 ({exc.reason})", start + exc.start) from exc
        if len(text) == size:  # ASCII
            return size
        # A character outside the BMP (4 UTF-8 bytes, lead byte 0xF0..0xF4) takes two UTF-16 units.
        return len(text) + sum(data.count(lead, start, end) for lead in _ASTRAL_LEADS)

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
        while True:
            if not left:
                if not stack:
                    return
                left, in_object = stack.pop()
                continue
            left -= 1
            if in_object:
                self.string()  # the key
            at = self.pos
            if at >= end:
                raise self.fail("truncated")
            tag = data[at]
            self.pos = at + 1
            if tag in _CONSTANTS:
                continue
            if tag == _ANY_STRING:
                self.string()
            elif tag == _VARINT:
                self.varint()
            elif tag in _FIXED_WIDTH:
                self.take(_FIXED_WIDTH[tag])
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

    # -- structs -------------------------------------------------------------------

    def structs(self) -> tuple[dict[int, tuple[Run, ...]], dict[int, int], int]:
        limits = self.limits
        runs: dict[int, tuple[Run, ...]] = {}
        references: dict[int, int] = {}
        seen: set[int] = set()
        total = 0
        for _ in range(self.count("clients", limits.max_clients)):
            count = self.count("structs", limits.max_structs)
            at = self.pos
            client = self.uint()
            if client in seen:
                raise self.fail(f"client {client} listed twice", at)
            seen.add(client)
            clock = self.uint()
            total += count
            client_runs: list[Run] = []
            run_start, run_skip = clock, False
            for index in range(count):
                at = self.pos
                length, skip = self.struct(references)
                if index and skip != run_skip:
                    client_runs.append((run_start, clock, run_skip))
                    run_start = clock
                run_skip = skip
                clock += length
                if clock > MAX_SAFE_INTEGER:
                    raise self.fail(f"client {client}'s clock passes 2**53", at)
            if count:
                client_runs.append((run_start, clock, run_skip))
                runs[client] = tuple(client_runs)
        return runs, references, total

    def struct(self, references: dict[int, int]) -> tuple[int, bool]:
        """One struct; return its clock length and whether it is a Skip."""
        at = self.pos
        if at >= self.end:
            raise self.fail("truncated")
        info = self.data[at]
        self.pos = at + 1
        ref = info & 0x1F
        if ref == _GC or ref == _SKIP:
            if info != ref:
                raise self.fail(f"flags {info & 0xE0:#x} on a {'GC' if ref == _GC else 'Skip'} struct", at)
            return self.length("GC" if ref == _GC else "Skip"), ref == _SKIP
        if ref > _DOC:
            raise self.fail(f"unknown struct ref {ref}", at)
        if info & _ORIGIN:
            self.reference(references)
        if info & _RIGHT_ORIGIN:
            self.reference(references)
        if not info & (_ORIGIN | _RIGHT_ORIGIN):
            parent_at = self.pos
            parent = self.uint()
            if parent == 1:
                self.string()
            elif parent == 0:
                self.reference(references)
            else:
                raise self.fail(f"parent flag {parent} is neither 0 nor 1", parent_at)
            if info & _PARENT_SUB:
                self.string()
        return self.content(ref), False

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
        deletes: dict[int, int] = {}
        for _ in range(self.count("delete-set clients", self.limits.max_clients)):
            client = self.uint()
            for _ in range(self.count("delete ranges", self.limits.max_delete_ranges)):
                at = self.pos
                end = self.uint() + self.uint()
                if end > MAX_SAFE_INTEGER:
                    raise self.fail("delete range passes 2**53", at)
                if end > deletes.get(client, 0):
                    deletes[client] = end
        return deletes
