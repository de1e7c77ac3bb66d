"""Typed errors raised by the relay server.

Every error carries its data as attributes so that the edges (WebSocket close
codes in :mod:`syncline.engine.closecodes`, REST problem bodies, the CLI) map it
without parsing messages. No error message ever contains a token or a secret.
Store failures live with the store interface (:mod:`.store.base`); the protocol's
errors (bad frames, document names and tokens) live with the engine
(:mod:`syncline.engine.errors`).
"""

from __future__ import annotations

from pathlib import Path


class ServerError(Exception):
    """Base class of every error the server raises on purpose."""


class SecretFileError(ServerError):
    """Raised when ``DATA_DIR/secret`` cannot be created or read, or is unsafe to use.

    ``path`` is the file (or directory) concerned; ``reason`` says what is wrong.
    The secret's content is never part of the message.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class RoomLimitReached(ServerError):
    """Raised when opening a room would exceed ``max_rooms`` rooms in memory."""

    def __init__(self, max_rooms: int) -> None:
        super().__init__(f"{max_rooms} rooms are open; no room for another")
        self.max_rooms = max_rooms


class RoomLoadFailed(ServerError):
    """Raised to peers that waited on a room whose load failed."""

    def __init__(self, name: str) -> None:
        super().__init__(f"room {name!r} could not be loaded")
        self.name = name


class DataDirError(ServerError):
    """Raised when the relay cannot create or lock its data directory ``path``; ``reason`` says why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"data directory {path}: {reason}")
        self.path = path
        self.reason = reason


class DataDirInUse(ServerError):
    """Raised when another relay holds the lock on the data directory ``path``.

    ``pid`` is the holder's process id as its lock file records it, or None when that
    cannot be read.
    """

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = "unknown" if pid is None else str(pid)
        super().__init__(
            f"data directory {path} is in use by another relay (pid {holder}); stop it or pass another --data-dir"
        )
        self.path = path
        self.pid = pid

class ListenError(ServerError):
    """Raised when the relay cannot listen on ``host``:``port``; ``reason`` says why and what to do."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {reason}")
        self.host = host
        self.port = port
        self.reason = reason


class MissingDriver(ServerError):
    """Raised when a setting needs a driver that is not installed (``module``, in the ``extra`` extra).

    ``setting`` is the flag that asked for it.
    """

    def __init__(self, setting: str, module: str, extra: str) -> None:
        super().__init__(f"{setting} needs the {module} driver, which is not installed: "
                         f"pip install 'syncline[{extra}]'")
        self.setting = setting
        self.module = module
        self.extra = extra


class AwarenessOverShare(ServerError):
    """Raised when a connection announces more awareness states, or bytes of them, than its share.

    ``states`` and ``size`` are what it would have held; ``max_states`` and ``max_bytes`` its share.
    """

    def __init__(self, states: int, size: int, max_states: int, max_bytes: int) -> None:
        super().__init__(f"{states} awareness states of {size} bytes would exceed a connection's share "
                         f"of {max_states} states and {max_bytes} bytes")
        self.states = states
        self.size = size
        self.max_states = max_states
        self.max_bytes = max_bytes

class WriteRefused(ServerError):
    """Base class of the reasons a room refuses a well-formed update; nothing of it was stored."""


class UpdateOutOfOrder(WriteRefused):
    """Raised when an update depends on clocks the room has not received yet.

    ``missing`` maps each client ID to the clock the room would need first. Yrs would
    integrate such an update only in part (and say nothing), so it is held or refused.
    """

    def __init__(self, missing: dict[int, int]) -> None:
        shown = ", ".join(f"{client}@{clock}" for client, clock in sorted(missing.items())[:4])
        super().__init__(f"update depends on clocks the room lacks: {shown}")
        self.missing = missing


class ClientIdTaken(WriteRefused):
    """Raised when an update carries structs of a Yjs client ID bound to another writer.

    ``client`` is the client ID; the other writer's identity is not disclosed.
    """

    def __init__(self, client: int) -> None:
        super().__init__(f"client ID {client} belongs to another writer of this document")
        self.client = client


class UpdateNotIntegrated(ServerError):
    """Raised when a stored update did not integrate fully into the room's document.

    ``seq`` is its log row, kept out of every compaction; ``short`` maps each client ID
    to the clock the update reaches and the document does not. Never acknowledged.
    """

    def __init__(self, seq: int, short: dict[int, int]) -> None:
        super().__init__(f"stored update {seq} did not integrate fully ({len(short)} clients short)")
        self.seq = seq
        self.short = short


class Refused(ServerError):
    """Raised by the admission when a request may not open a document.

    ``reason`` is a fixed label (``invalid_document_name``, ``missing_token``,
    ``invalid_token``, ``token_expired``, ``forbidden``, ``read_only``): each edge maps it
    to a close code or a problem type. ``detail`` is for the client; it never quotes a token.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"refused ({reason}): {detail}")
        self.reason = reason
        self.detail = detail
