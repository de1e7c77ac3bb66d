"""One frozen ``Settings`` with every default, built from flags and ``SYNCLINE_*`` variables.

Modules receive a ``Settings``; nothing else reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "SYNCLINE_"


class SettingsError(ValueError):
    """Raised when a flag or environment variable has a value outside its rules."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class Settings:
    host: str = field(default="127.0.0.1", metadata={"help": 'Interface to listen on.'})
    port: int = field(
        default=8787, metadata={"help": 'TCP port to listen on (0 picks a free one and prints it).'}
    )
    data_dir: Path = field(
        default=Path("./syncline-data"), metadata={"help": 'Directory holding the SQLite store and the generated secret.'}
    )
    secret: str | None = field(
        default=None, metadata={"help": 'HS256 token secret; generated into DATA_DIR/secret when unset.'}
    )
    log_json: bool = field(
        default=False, metadata={"help": 'Log one JSON object per line instead of plain text.'}
    )
    log_level: str = field(
        default="info", metadata={"help": 'Minimum log level: debug, info, warning or error.'}
    )

    max_message_bytes: int = field(
        default=1_048_576, metadata={"help": 'Largest WebSocket message accepted, in bytes.'}
    )
    max_rooms: int = field(
        default=10_000, metadata={"help": 'Most rooms (documents) open in memory at once.'}
    )
    max_connections_per_tenant: int = field(
        default=1_000, metadata={"help": 'Most concurrent WebSocket connections of one tenant.'}
    )
    rate_messages_per_second: float = field(
        default=200.0, metadata={"help": 'Sustained messages per second one connection may send.'}
    )
    rate_burst: int = field(
        default=400, metadata={"help": 'Messages one connection may send at once above the sustained rate.'}
    )
    send_queue_messages: int = field(
        default=512, metadata={"help": 'Messages queued for a client before it counts as a slow consumer and is dropped.'}
    )
    room_idle_seconds: float = field(
        default=30.0, metadata={"help": 'Seconds a room with no peers stays in memory before it is flushed and evicted.'}
    )
    compaction_updates: int = field(
        default=500, metadata={"help": "Log rows after a room's snapshot that trigger compaction into a new snapshot."}
    )
    group_commit_max_batch: int = field(
        default=1_024, metadata={"help": 'Most updates committed in one transaction.'}
    )
    sqlite_synchronous: str = field(
        default="FULL", metadata={"help": 'SQLite synchronous mode: FULL (fsync every commit, the default) or NORMAL.'}
    )
    awareness_max_bytes: int = field(
        default=65_536, metadata={"help": 'Largest awareness state one client may publish.'}
    )

    @classmethod
    def from_sources(cls, flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
        """Defaults, overridden by ``SYNCLINE_*`` variables, overridden by flags (None = unset)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _cast(f.name, f.type, raw)
        for name, value in (flags or {}).items():
            if value is not None:
                values[name] = value
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise SettingsError("port", "must be between 0 and 65535")
        positive = (
            "max_message_bytes", "max_rooms", "max_connections_per_tenant", "rate_burst",
            "send_queue_messages", "compaction_updates", "group_commit_max_batch", "awareness_max_bytes",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise SettingsError(name, "must be at least 1")
        for name in ("rate_messages_per_second", "room_idle_seconds"):
            if getattr(self, name) <= 0:
                raise SettingsError(name, "must be greater than 0")
        if self.sqlite_synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise SettingsError("sqlite_synchronous", "must be FULL, EXTRA or NORMAL")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise SettingsError("log_level", "must be debug, info, warning or error")
        if self.secret is not None and len(self.secret) < 32:
            raise SettingsError("secret", "must be at least 32 characters")


def _cast(name: str, kind: Any, raw: str) -> Any:
    kind = str(kind)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "Path":
            return Path(raw)
    except ValueError:
        raise SettingsError(name, f"cannot read {raw!r} as {kind}") from None
    return raw
