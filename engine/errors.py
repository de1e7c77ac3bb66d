"""Typed errors raised by the engine.

Every error carries its data as attributes so that the edges (WebSocket close
codes, REST problem bodies, the CLI) can map it without parsing messages.
No error message ever contains a token or a secret.
"""

from __future__ import annotations

_SHOWN = 80
"""Longest piece of client input quoted in an error message."""


def _quote(value: object) -> str:
    """``repr`` of client input, cut short so a huge name cannot flood a log line."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class ValidationError(EngineError, ValueError):
    """Raised when a value offered to the engine breaks a documented rule.

    ``field`` names the offending input, ``reason`` says which rule it broke.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidUpdate(EngineError, ValueError):
    """Raised when update bytes cannot be decoded or integrated; the document is unchanged."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid update: {reason}")
        self.reason = reason


class InvalidStateVector(EngineError, ValueError):
    """Raised when state-vector bytes cannot be decoded."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid state vector: {reason}")
        self.reason = reason


class UnknownLine(EngineError, LookupError):
    """Raised when a cart operation names a line the replica has never observed."""

    def __init__(self, line_key: str) -> None:
        super().__init__(f"no line {line_key!r} in this cart")
        self.line_key = line_key


class CartClosed(EngineError):
    """Raised when editing (or merging, or checking out) a cart that is closed.

    ``state`` says how it closed and ``target`` where it went: ``"merged"`` into the
    cart ``target`` (also ``merged_into``, as before), or ``"checked_out"`` into the
    order ``target`` (also ``order``; ``merged_into`` is then None).
    ``CartClosed(merged_into)`` still means a merged cart.
    """

    def __init__(self, merged_into: str | None = None, *, state: str = "merged", target: str | None = None) -> None:
        if target is None:
            target = merged_into or ""
        if state == "checked_out":
            message = f"cart was checked out into order {target!r} and no longer accepts edits"
        else:
            message = f"cart was merged into {target!r} and no longer accepts edits"
        super().__init__(message)
        self.state = state
        self.target = target
        self.merged_into = target if state == "merged" else None
        self.order = target if state == "checked_out" else None


class AlreadyMerged(EngineError):
    """Raised when a guest cart already merged into one cart is merged into another."""

    def __init__(self, merged_into: str, requested: str) -> None:
        super().__init__(f"cart was already merged into {merged_into!r}, not {requested!r}")
        self.merged_into = merged_into
        self.requested = requested


class DuplicateAdjustment(EngineError):
    """Raised when an adjustment id is reused with a different body."""

    def __init__(self, adjustment_id: str) -> None:
        super().__init__(f"adjustment {adjustment_id!r} already exists with a different body")
        self.adjustment_id = adjustment_id


class DuplicateCount(EngineError):
    """Raised when a count id is reused with a different body."""

    def __init__(self, count_id: str) -> None:
        super().__init__(f"count {count_id!r} already exists with a different body")
        self.count_id = count_id


class UnknownConflict(EngineError, LookupError):
    """Raised when resolving a conflict that is not open on this replica."""

    def __init__(self, conflict_id: str) -> None:
        super().__init__(f"no open conflict {conflict_id!r}")
        self.conflict_id = conflict_id


class DuplicateResolution(EngineError):
    """Raised when a resolution id is reused for a different decision."""

    def __init__(self, resolution_id: str) -> None:
        super().__init__(f"resolution {resolution_id!r} already exists with a different decision")
        self.resolution_id = resolution_id


class OrderNotPlaced(EngineError, LookupError):
    """Raised when moving an order whose checkout content this replica does not hold."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id!r} has not been placed")
        self.order_id = order_id


class TransitionRefused(EngineError):
    """Raised when an order's stage or payment cannot move from ``current`` to ``requested``."""

    def __init__(self, kind: str, current: str, requested: str, reason: str) -> None:
        super().__init__(f"{kind} {current} -> {requested} refused: {reason}")
        self.kind = kind
        self.current = current
        self.requested = requested
        self.reason = reason


# -- the protocol: frames, document names, tokens -------------------------------------


class ProtocolError(EngineError, ValueError):
    """Raised when a frame does not follow the y-websocket format; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidDocumentName(EngineError, ValueError):
    """Raised when a document name or request path breaks the ``{tenant}/{kind}/{id}`` rules.

    ``name`` is the offending input as received (the whole name, or one part of
    it); ``reason`` says which rule it broke.
    """

    def __init__(self, name: object, reason: str) -> None:
        super().__init__(f"invalid document name {_quote(name)}: {reason}")
        self.name = name
        self.reason = reason


class AuthError(EngineError):
    """Base class of the reasons a client's token is refused."""


class InvalidToken(AuthError):
    """Raised when a token is missing, malformed, forged, or grants something impossible.

    ``reason`` is a short fixed text; it never quotes the token.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid token: {reason}")
        self.reason = reason


class ExpiredToken(AuthError):
    """Raised when a correctly signed token is past its ``exp`` time.

    ``expired_at`` is the token's ``exp`` claim (seconds since the epoch).
    """

    def __init__(self, expired_at: int) -> None:
        super().__init__(f"token expired at {expired_at}")
        self.expired_at = expired_at


class WeakSecret(EngineError, ValueError):
    """Raised when a token secret is shorter than ``minimum`` characters (its value is never shown)."""

    def __init__(self, length: int, minimum: int) -> None:
        super().__init__(f"token secret has {length} characters; at least {minimum} are required")
        self.length = length
        self.minimum = minimum
