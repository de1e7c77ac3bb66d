"""The transport-agnostic sync core of a peer.

A peer exchanges three things with any other peer, over any transport:
its state vector (what it has), the diff the other side lacks, and updates.
Updates are the v1 bytes Yrs produces, never re-encoded.
"""

from __future__ import annotations

from collections.abc import Sequence

from pycrdt import Doc, get_state, get_update, merge_updates

from .errors import InvalidStateVector, InvalidUpdate
from .structs import DEFAULT_LIMITS, StructLimits, UpdateShape, read_update

_DECODE_ERRORS: tuple[type[Exception], ...] = (ValueError, RuntimeError)


def _is_yrs_panic(exc: BaseException) -> bool:
    """A Rust panic inside Yrs reaches Python as pyo3's PanicException, a BaseException
    subclass that no module exports for ``except`` clauses."""
    return type(exc).__name__ == "PanicException" and type(exc).__module__ == "pyo3_runtime"


def state_vector(doc: Doc) -> bytes:
    """What ``doc`` has seen, encoded as a Yjs state vector."""
    return doc.get_state()


def encode_diff(doc: Doc, since: bytes | None = None) -> bytes:
    """Everything in ``doc`` that a peer at state vector ``since`` lacks (all of it if None)."""
    if since is None:
        return doc.get_update()
    decode_state_vector(since)
    try:
        return doc.get_update(since)
    except _DECODE_ERRORS as exc:
        raise InvalidStateVector(str(exc)) from exc


def _check_bytes(update: object, max_bytes: int | None) -> bytes:
    if not isinstance(update, (bytes, bytearray, memoryview)):
        raise InvalidUpdate(f"expected bytes, got {type(update).__name__}")
    if max_bytes is not None and len(update) > max_bytes:
        raise InvalidUpdate(f"{len(update)} bytes exceeds the limit of {max_bytes}")
    return bytes(update)


def validate_update(
    update: bytes, *, max_bytes: int | None = None, limits: StructLimits = DEFAULT_LIMITS
) -> UpdateShape:
    """Return the shape of ``update`` (see :func:`read_update`); raise :class:`InvalidUpdate`
    unless it is exactly one well-formed v1 update within ``limits``.

    Reads the bytes in pure Python: no CRDT library sees them."""
    return read_update(_check_bytes(update, max_bytes), limits=limits)


def apply_update(doc: Doc, update: bytes, *, max_bytes: int | None = None) -> None:
    """Integrate ``update`` into ``doc``.

    Yrs decodes the bytes in full before it integrates anything, so garbage or
    truncated input raises :class:`InvalidUpdate` and leaves ``doc`` unchanged.
    Applying an update twice is safe. Applying one whose dependencies have not
    arrived is not: pycrdt 0.14.13 holds back some such updates, but when one
    writer's updates arrive out of clock order and a transaction touched two root
    types, it integrates part of the held-back update once the gap is filled and
    drops the rest without an error (the document's state vector stops short;
    applying the same update again integrates what was dropped). Callers check
    :meth:`UpdateShape.missing` against the document's clocks first (hold the
    update until it is empty) and that the document reached
    :meth:`UpdateShape.clocks` after.
    """
    data = _check_bytes(update, max_bytes)
    try:  # Yrs decodes the whole update before it integrates anything
        doc.apply_update(data)
    except BaseException as exc:
        refused = _refused(exc)
        if refused is None:
            raise
        raise refused from exc


def apply_update_state(doc: Doc, update: bytes) -> bytes:
    """:func:`apply_update`, returning the document's state vector once ``update`` is in.

    Both in one transaction: a relay reads the state vector after every write, and a
    transaction of its own costs about as much as the read (pycrdt 0.14's ``Doc`` offers no
    such call, so this uses its ``_doc`` and the transaction's ``_txn``)."""
    data = _check_bytes(update, None)
    try:
        with doc.transaction() as txn:
            doc._doc.apply_update(txn._txn, data)
            state: bytes = doc._doc.get_state(txn._txn)
            return state
    except BaseException as exc:
        refused = _refused(exc)
        if refused is None:
            raise
        raise refused from exc


def _refused(exc: BaseException) -> InvalidUpdate | None:
    """The :class:`InvalidUpdate` to raise for ``exc`` if Yrs could not decode or integrate
    the update; None for anything else (raised as it is)."""
    if isinstance(exc, _DECODE_ERRORS):
        return InvalidUpdate(str(exc))
    if _is_yrs_panic(exc):
        return InvalidUpdate(f"Yrs could not integrate it: {exc}")
    return None


# merge, update_state_vector and update_diff hand their update bytes to Yrs: they are for
# trusted bytes (stored, read with read_update when they arrived), as the room's cold load.


def merge(updates: Sequence[bytes]) -> bytes:
    """One update holding everything ``updates`` hold, computed from the bytes alone (no document).

    Raises :class:`InvalidUpdate` if Yrs cannot decode one of them."""
    if not updates:
        return b"\x00\x00"
    if len(updates) == 1:
        _bytes_call(get_state, _check_bytes(updates[0], None))
        return bytes(updates[0])
    return _bytes_call(merge_updates, *(_check_bytes(u, None) for u in updates))


def update_state_vector(update: bytes) -> bytes:
    """The state vector of a document holding exactly ``update`` (no document built)."""
    return _bytes_call(get_state, _check_bytes(update, None))


def update_diff(update: bytes, state_vector: bytes) -> bytes:
    """What ``update`` holds that a peer at ``state_vector`` lacks (no document built)."""
    decode_state_vector(state_vector)  # raises InvalidStateVector on malformed bytes
    return _bytes_call(get_update, _check_bytes(update, None), bytes(state_vector))


def _bytes_call(function: object, *args: bytes) -> bytes:
    try:
        result = function(*args)  # type: ignore[operator]
    except _DECODE_ERRORS as exc:
        raise InvalidUpdate(str(exc)) from exc
    except BaseException as exc:
        if not _is_yrs_panic(exc):
            raise
        raise InvalidUpdate(f"Yrs could not decode it: {exc}") from exc
    return bytes(result)


def decode_state_vector(data: bytes) -> dict[int, int]:
    """Decode a v1 state vector into ``{client_id: clock}``; raise on malformed bytes."""
    return _read_state_vector(data, None)


def index_state_vector(data: bytes) -> tuple[dict[int, int], dict[int, tuple[int, int]]]:
    """Decode a v1 state vector into ``{client_id: clock}`` and ``{client_id: (start, stop)}``,
    where ``data[start:stop]`` encodes that client's clock; raise on malformed bytes."""
    spans: dict[int, tuple[int, int]] = {}
    return _read_state_vector(data, spans), spans


def _read_state_vector(data: bytes, spans: dict[int, tuple[int, int]] | None) -> dict[int, int]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidStateVector(f"expected bytes, got {type(data).__name__}")
    view = bytes(data)
    pos = 0

    def varuint() -> int:
        nonlocal pos
        result = shift = 0
        while True:
            if pos >= len(view):
                raise InvalidStateVector("truncated variable-length integer")
            byte = view[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7
            if shift > 63:
                raise InvalidStateVector("variable-length integer longer than 64 bits")

    count = varuint()
    if count > (len(view) - pos) // 2:
        raise InvalidStateVector(f"claims {count} entries in {len(view)} bytes")
    clocks = {}
    for _ in range(count):
        client = varuint()
        start = pos
        clocks[client] = varuint()
        if spans is not None:
            spans[client] = (start, pos)
    if pos != len(view):
        raise InvalidStateVector(f"{len(view) - pos} trailing bytes")
    return clocks


def own_clock(doc: Doc) -> int:
    """The Yjs clock the next item written by ``doc``'s own client will get."""
    return decode_state_vector(doc.get_state()).get(doc.client_id, 0)

