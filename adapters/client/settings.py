"""The sync client's settings: one frozen object with every default, checked once."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ClientSettingsError


@dataclass(frozen=True)
class ClientSettings:
    data_dir: Path
    """Directory holding ``client.sqlite3`` and ``locks/``; clients sharing it share documents."""
    urls: tuple[str, ...] = ()
    """Relay base URLs (``ws://host:port``), tried in turn; empty: never connect (offline only)."""
    token: str | None = field(default=None, repr=False)
    """Bearer token sent in the ``Authorization`` header (never in the URL, so never in logs)."""
    connect_timeout: float = 5.0
    """Seconds one connection attempt (TCP + WebSocket handshake) may take."""
    ping_interval: float = 10.0
    """Seconds between WebSocket pings on an idle or busy connection."""
    ping_timeout: float = 10.0
    """Seconds without a pong after which the connection counts as dead and is dropped."""
    close_timeout: float = 1.0
    """Seconds a closing handshake may take before the socket is dropped."""
    backoff_base: float = 0.2
    """Upper bound of the first reconnection delay, in seconds (full jitter below it)."""
    backoff_cap: float = 30.0
    """Largest reconnection delay, in seconds."""
    device_poll_interval: float = 0.01
    """Seconds between checks for other processes' commits to the shared SQLite file."""
    lease_poll_interval: float = 0.25
    """Seconds between a follower's attempts to become a document's leader (see same_device)."""
    max_write_bytes: int = 256 * 1024
    """Largest update the client merges outbox rows into; keep it under the relay's message limit."""
    max_inflight_writes: int = 16
    """Writes sent and not yet acknowledged, at most, before the client waits for acks."""
    max_writes_per_second: float = 100.0
    """Live writes per second, at most (one second's worth may go at once); the relay's default
    limit is 200 messages per second with a burst of 400, and closes faster senders with 4429."""
    compaction_rows: int = 1_000
    """Rows of one document in the local log that make its leader fold them into a snapshot."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if isinstance(self.urls, str):
            object.__setattr__(self, "urls", (self.urls,))
        object.__setattr__(self, "urls", tuple(url.rstrip("/") for url in self.urls))
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme not in ("ws", "wss") or not parts.hostname:
                raise ClientSettingsError("urls", f"{url[:80]!r} is not a ws:// or wss:// URL")
            if parts.path not in ("", "/") or parts.query or parts.fragment:
                raise ClientSettingsError("urls", f"{url[:80]!r}: give the relay's base URL, no path or query")
        for name in ("connect_timeout", "ping_interval", "ping_timeout", "close_timeout", "backoff_base",
                     "backoff_cap", "device_poll_interval", "lease_poll_interval", "max_writes_per_second"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ClientSettingsError(name, f"must be a positive number, not {value!r}")
        if self.backoff_cap < self.backoff_base:
            raise ClientSettingsError("backoff_cap", "must be at least backoff_base")
        for name in ("max_write_bytes", "max_inflight_writes", "compaction_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ClientSettingsError(name, f"must be a positive integer, not {value!r}")
