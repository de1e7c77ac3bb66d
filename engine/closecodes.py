"""WebSocket close codes of the Syncline protocol, in one place: the relay sends them, peers read them.

1000-1011 are the standard codes of RFC 6455; 4000-4999 are private to Syncline.
The 44xx codes mirror the HTTP status a REST client would get for the same
fault (4401 ~ 401, 4413 ~ 413, ...); the 45xx codes mirror 503/504. A client
should not reconnect unchanged after a 44xx close: the same request fails again.
Documented for clients in docs/protocol.md; :data:`CLOSE_REASONS` holds the short
reason text sent in the close frame (at most 123 bytes, as RFC 6455 allows).
"""

from __future__ import annotations

NORMAL = 1000
"""The connection did its job and closes cleanly."""
GOING_AWAY = 1001
"""The server is shutting down (or restarting); reconnect later."""
INTERNAL_ERROR = 1011
"""An unexpected server fault; the client may reconnect."""

INVALID_MESSAGE = 4400
"""A malformed frame, an unknown message type, or a text frame."""
UNAUTHORIZED = 4401
"""The token is missing, malformed, forged, or signed with another secret."""
FORBIDDEN = 4403
"""The document lies outside the token's tenant or patterns."""
INVALID_DOCUMENT_NAME = 4404
"""The document name (or the raw request path) breaks the naming rules."""
READ_ONLY = 4405
"""A client holding a read-only token sent an update."""
SLOW_CONSUMER = 4408
"""The client read too slowly and its send queue filled up."""
TOO_LARGE = 4413
"""A message was larger than the configured maximum size."""
CLIENT_ID_TAKEN = 4409
"""An update carried structs of a Yjs client ID bound to another writer (a collision or a forgery):
pick a new client ID (a new ``Y.Doc``) before writing again."""
TOKEN_EXPIRED = 4419
"""The token has expired (at connect time or during the session)."""
INVALID_UPDATE = 4422
"""An update could not be decoded as a Yjs update; nothing was applied."""
OUT_OF_ORDER = 4425
"""The client kept more updates waiting for clocks it never sent than the relay holds for it."""
RATE_LIMITED = 4429
"""The client sent messages faster than its rate limit allows."""
TOO_MANY_CONNECTIONS = 4430
"""The tenant already has as many connections as it is allowed."""
TOKEN_CONNECTIONS = 4431
"""The token's holder (its subject, or the token itself without one) already has as many connections
as one holder is allowed; retry later, or close some of its own."""
ROOM_LIMIT = 4503
"""The relay already holds as many open rooms as it is allowed; retry later."""
STORE_UNAVAILABLE = 4504
"""The store cannot be written; nothing from this connection was acknowledged after it failed."""
FANOUT_UNAVAILABLE = 4505
"""This cluster node cannot reach the fan-out (Redis): it refuses writes and new peers; use another node."""
SERVER_FULL = 4506
"""The relay process already holds as many connections as it is allowed; retry later or use another node."""

CLOSE_REASONS: dict[int, str] = {
    NORMAL: "normal",
    GOING_AWAY: "going away",
    INTERNAL_ERROR: "internal error",
    INVALID_MESSAGE: "invalid message",
    UNAUTHORIZED: "unauthorized",
    FORBIDDEN: "forbidden",
    INVALID_DOCUMENT_NAME: "invalid document name",
    READ_ONLY: "read-only",
    SLOW_CONSUMER: "slow consumer",
    TOO_LARGE: "too large",
    CLIENT_ID_TAKEN: "client id taken",
    TOKEN_EXPIRED: "token expired",
    INVALID_UPDATE: "invalid update",
    OUT_OF_ORDER: "out of order",
    RATE_LIMITED: "rate limited",
    TOO_MANY_CONNECTIONS: "too many connections",
    TOKEN_CONNECTIONS: "too many token connections",
    ROOM_LIMIT: "room limit",
    STORE_UNAVAILABLE: "store unavailable",
    FANOUT_UNAVAILABLE: "fan-out unavailable",
    SERVER_FULL: "server full",
}
"""Short reason text sent with each close code: the "name" column of docs/protocol.md."""
