"""One frozen ``Settings`` with every default, built from flags and ``SYNCLINE_*`` variables.

Modules receive a ``Settings``; nothing else reads the environment.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from syncline.engine.errors import InvalidDocumentName
from syncline.engine.names import check_part

ENV_PREFIX = "SYNCLINE_"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
ORIGIN_PATTERN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#@\s]+")
"""An origin as browsers send it: ``scheme://host[:port]``, lowercase, no path, no trailing slash."""


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
    store: str = field(
        default="sqlite", repr=False,
        metadata={"help": 'Where documents are stored: "sqlite" (the embedded file in DATA_DIR) or a '
                          'postgresql://user@host:port/database URL shared by every relay node.'},
    )
    fanout: str = field(
        default="none", repr=False,
        metadata={"help": 'How relay nodes share rooms: "none" (a single node) or a redis://host:port/db URL '
                          'that every node of the cluster uses (with a shared --store postgresql://...).'},
    )
    fanout_prefix: str = field(
        default="syncline",
        metadata={"help": 'Prefix of the Redis channels: nodes of one cluster share it; clusters sharing one '
                          'Redis server need different ones.'},
    )
    secret: str | None = field(
        default=None, repr=False, metadata={"help": 'HS256 token secret; generated into DATA_DIR/secret when unset.'}
    )
    cors_origin: tuple[str, ...] = field(
        default=(),
        metadata={"help": 'A browser origin (scheme://host[:port]) allowed to call REST and SSE across origins, '
                          'and to open WebSockets; repeatable ("*" allows any). Unset: no CORS, any WebSocket '
                          'origin. The variable takes a comma- or space-separated list.'},
    )
    demo_catalog: bool = field(
        default=False,
        metadata={"help": "Give tenant 'demo' a sample price catalog when it has none (the storefront demo's "
                          "products). Always on while the token secret is generated, as in development."},
    )
    log_json: bool = field(
        default=False, metadata={"help": 'Log one JSON object per line instead of plain text.'}
    )
    log_level: str = field(
        default="info", metadata={"help": 'Minimum log level: debug, info, warning or error.'}
    )
    event_loop: str = field(
        default="auto", metadata={"help": 'asyncio event loop: auto (uvloop where installed), uvloop or asyncio.'}
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
    send_queue_bytes: int = field(
        default=16_777_216,
        metadata={"help": 'Bytes queued for a client (sync step 2 answers included) before it counts as a slow '
                          'consumer and is dropped; one larger message still goes to a client whose queue is empty.'},
    )
    held_updates_max: int = field(
        default=64, metadata={"help": 'Updates one client may have waiting for clocks it has not sent yet '
                                      '(out of order) before it is dropped with 4425.'}
    )
    held_updates_bytes: int = field(
        default=4 * 1024 * 1024, metadata={"help": 'Bytes of such waiting updates one client may have.'}
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
        default="FULL", metadata={"help": 'SQLite synchronous mode: FULL (fsync every commit, the default), EXTRA or NORMAL.'}
    )
    awareness_max_bytes: int = field(
        default=65_536, metadata={"help": 'Largest awareness message one client may send.'}
    )
    awareness_connection_states: int = field(
        default=16, metadata={"help": 'Most awareness states one connection may announce and hold in its room.'}
    )
    awareness_connection_bytes: int = field(
        default=65_536, metadata={"help": 'Most bytes of awareness states one connection may hold in its room.'}
    )
    awareness_room_states: int = field(
        default=1_000, metadata={"help": "Most awareness states one room holds (other nodes' clients included)."}
    )
    awareness_room_bytes: int = field(
        default=1_048_576, metadata={"help": "Most bytes of awareness states one room holds (other nodes' included)."}
    )
    broadcast_rate_per_second: float = field(
        default=1.0, metadata={"help": "Sustained broadcasts per second one tenant may send (POST .../live/broadcast), "
                                       "per relay node."}
    )
    broadcast_burst: int = field(
        default=10, metadata={"help": 'Broadcasts one tenant may send at once above the sustained rate.'}
    )
    metrics_tenants: int = field(
        default=100, metadata={"help": 'Most tenants with a series of their own in the per-tenant gauges of '
                                       '/metrics (by connections); the rest are summed under tenant="_other".'}
    )
    rest_max_body_bytes: int = field(
        default=262_144, metadata={"help": 'Largest REST request body accepted, in bytes.'}
    )
    rest_batch_max_operations: int = field(
        default=500, metadata={"help": 'Most operations in one offline batch POST.'}
    )
    idempotency_ttl_seconds: float = field(
        default=86_400.0, metadata={"help": 'Seconds an Idempotency-Key and its first response are kept (across restarts).'}
    )
    idempotency_claim_seconds: float = field(
        default=60.0, metadata={"help": 'Seconds after which the claim of a write still running on an '
                                        'Idempotency-Key is presumed dead (its node crashed) and taken over; '
                                        'keep it above the longest write.'}
    )
    feed_retention_seconds: float = field(
        default=604_800.0, metadata={"help": 'Seconds the change feed keeps its events for Last-Event-ID resume.'}
    )
    sse_heartbeat_seconds: float = field(
        default=15.0, metadata={"help": 'Seconds between heartbeat events on a change feed stream.'}
    )
    request_timeout_seconds: float = field(
        default=10.0, metadata={"help": 'Seconds a client has to send a whole HTTP request or WebSocket upgrade '
                                        'before it is dropped (slowloris guard).'}
    )
    ws_ping_seconds: float = field(
        default=20.0, metadata={"help": 'Seconds between WebSocket keepalive pings, and to answer one before '
                                        'being dropped.'}
    )
    access_log: bool = field(
        default=True, metadata={"help": 'Log one compact line per HTTP request and WebSocket connection (method, '
                                        'route template, status or close code, time, request id, tenant); '
                                        '--no-access-log keeps only the lines of refusals.'}
    )
    rest_rate_per_second: float = field(
        default=50.0, metadata={"help": 'Sustained REST and SSE requests per second one token subject may make '
                                        '(shared by every node of a cluster).'}
    )
    rest_burst: int = field(
        default=200, metadata={"help": 'REST requests one token subject may make at once above the sustained rate.'}
    )
    rest_tenant_rate_per_second: float = field(
        default=500.0, metadata={"help": 'Sustained REST and SSE requests per second of one tenant, all its '
                                         'tokens together (shared by every node of a cluster).'}
    )
    rest_tenant_burst: int = field(
        default=1_000, metadata={"help": 'REST requests one tenant may make at once above its sustained rate.'}
    )
    guest_tenant: tuple[str, ...] = field(
        default=(),
        metadata={"help": 'A tenant whose storefront may create guest sessions (POST .../guest-sessions: a guest '
                          'cart and a token for it alone); repeatable. Unset: no tenant has guests. The variable '
                          'takes a comma- or space-separated list.'},
    )
    guest_session_seconds: int = field(
        default=604_800, metadata={"help": 'Lifetime of a guest token and of its syncline_guest cookie, in seconds.'}
    )
    cart_idle_seconds: float = field(
        default=604_800.0, metadata={"help": 'Seconds without an edit or a connected peer after which a cart shows '
                                             'as abandoned.'}
    )
    cart_retention_seconds: float = field(
        default=2_592_000.0, metadata={"help": 'Seconds without an edit or a connected peer after which a guest '
                                               'cart is deleted by the cart sweep (at least --cart-idle-seconds).'}
    )
    cart_sweep_seconds: float = field(
        default=3_600.0, metadata={"help": 'Seconds between two sweeps for guest carts past their retention.'}
    )
    forwarded_allow_ips: str = field(
        default="127.0.0.1",
        metadata={"help": 'Comma-separated addresses (or networks, or "*") of reverse proxies whose '
                          'X-Forwarded-For and X-Forwarded-Proto headers are trusted (uvicorn\'s '
                          '--forwarded-allow-ips).'},
    )
    max_connections: int = field(
        default=10_000, metadata={"help": 'Most concurrent WebSocket connections of this relay process (close 4506 beyond).'}
    )
    max_connections_per_token: int = field(
        default=100, metadata={"help": "Most concurrent WebSocket connections of one token holder: the token's "
                                       "subject, or the token itself when it has none (close 4431 beyond)."}
    )
    rate_bytes_per_second: int = field(
        default=1_048_576, metadata={"help": 'Sustained bytes per second the relay reads from one connection; '
                                             'above it the relay stops reading that socket until the budget refills '
                                             '(pongs too: keep --max-message-bytes / this below --ws-ping-seconds).'}
    )
    rate_burst_bytes: int = field(
        default=4_194_304, metadata={"help": 'Bytes one connection may send at once above the sustained byte rate '
                                             '(a larger message waits until a full burst has refilled).'}
    )
    store_timeout_seconds: float = field(
        default=5.0, metadata={"help": 'Seconds a PostgreSQL store call may take (a commit, a load, a lock wait) '
                                       'before it fails and its writer is closed with 4504; also how long '
                                       'PostgreSQL keeps the session of a node stalled inside a transaction.'}
    )
    ready_timeout_seconds: float = field(
        default=1.0, metadata={"help": 'Seconds /readyz waits for the store before it answers 503.'}
    )

    @classmethod
    def from_sources(cls, flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
        """Defaults, overridden by ``SYNCLINE_*`` variables, overridden by flags (None = unset)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        hints = get_type_hints(cls)
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _cast(f.name, hints[f.name], raw)
        for name, value in (flags or {}).items():
            if value is not None:
                values[name] = tuple(value) if isinstance(value, list) else value
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise SettingsError(sorted(unknown)[0], "is not a setting")
        return cls(**values)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`SettingsError` naming the first setting outside its rules."""
        hints = get_type_hints(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            expected = hints[f.name]
            if f.name == "secret" and value is None:
                continue
            if f.name in ("cors_origin", "guest_tenant"):
                if not isinstance(value, tuple) or not all(isinstance(origin, str) for origin in value):
                    raise SettingsError(f.name, f"must be a tuple of strings, not {type(value).__name__}")
                continue
            kind = {int: int, float: (int, float), bool: bool, str: str, Path: Path}.get(expected, str)
            if isinstance(value, bool) and expected is not bool or not isinstance(value, kind):
                raise SettingsError(f.name, f"must be {getattr(expected, '__name__', expected)}, "
                                            f"not {type(value).__name__}")
            if isinstance(value, float) and not math.isfinite(value):
                raise SettingsError(f.name, "must be a finite number")
        if not 0 <= self.port <= 65535:
            raise SettingsError("port", "must be between 0 and 65535")
        positive = (
            "max_message_bytes", "max_rooms", "max_connections_per_tenant", "rate_burst",
            "send_queue_messages", "send_queue_bytes", "held_updates_max", "held_updates_bytes",
            "compaction_updates", "group_commit_max_batch",
            "awareness_max_bytes", "awareness_connection_states", "awareness_connection_bytes",
            "awareness_room_states", "awareness_room_bytes",
            "rest_max_body_bytes", "rest_batch_max_operations", "broadcast_burst", "metrics_tenants",
            "rest_burst", "rest_tenant_burst", "guest_session_seconds",
            "max_connections", "max_connections_per_token", "rate_bytes_per_second", "rate_burst_bytes",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise SettingsError(name, "must be at least 1")
        for name in (
            "rate_messages_per_second", "room_idle_seconds", "idempotency_ttl_seconds", "idempotency_claim_seconds",
            "feed_retention_seconds", "sse_heartbeat_seconds", "request_timeout_seconds", "ws_ping_seconds",
            "broadcast_rate_per_second", "rest_rate_per_second", "rest_tenant_rate_per_second",
            "cart_idle_seconds", "cart_retention_seconds", "cart_sweep_seconds",
            "store_timeout_seconds", "ready_timeout_seconds",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(name, "must be greater than 0")
        if self.sqlite_synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise SettingsError("sqlite_synchronous", "must be FULL, EXTRA or NORMAL")
        if self.store != "sqlite" and not self.store.startswith(POSTGRES_SCHEMES):
            raise SettingsError("store", 'must be "sqlite" or a postgresql:// URL')
        if self.fanout != "none" and not self.fanout.startswith(REDIS_SCHEMES):
            raise SettingsError("fanout", 'must be "none" or a redis://, rediss:// or unix:// URL')
        if self.fanout != "none" and self.store == "sqlite":
            # Other nodes' updates are applied, never stored, by a node: they must share one store.
            raise SettingsError("fanout", "needs a store shared by every node (--store postgresql://...), not sqlite")
        if not self.fanout_prefix or len(self.fanout_prefix) > 64 or not all(
            c.isascii() and (c.isalnum() or c in "-_.:") for c in self.fanout_prefix
        ):
            raise SettingsError("fanout_prefix", "must be 1 to 64 letters, digits or - _ . :")
        if self.event_loop not in ("auto", "uvloop", "asyncio"):
            raise SettingsError("event_loop", "must be auto, uvloop or asyncio")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise SettingsError("log_level", "must be debug, info, warning or error")
        for origin in self.cors_origin:
            if origin != "*" and (origin != origin.lower() or not ORIGIN_PATTERN.fullmatch(origin)):
                raise SettingsError("cors_origin", f"{origin!r} is not an origin: scheme://host[:port] in lowercase, "
                                                   'without a path or a trailing slash, or "*"')
        for tenant in self.guest_tenant:
            try:
                check_part("tenant", tenant)
            except InvalidDocumentName as exc:
                raise SettingsError("guest_tenant", f"{tenant!r}: {exc.reason}") from None
        if self.cart_retention_seconds < self.cart_idle_seconds:
            raise SettingsError("cart_retention_seconds", "must be at least cart_idle_seconds")
        if not self.forwarded_allow_ips.strip():
            raise SettingsError("forwarded_allow_ips", 'must name at least one address, or "*"')
        if self.secret is not None and len(self.secret) < 32:
            raise SettingsError("secret", "must be at least 32 characters")


def _cast(name: str, kind: Any, raw: str) -> Any:
    """Read one environment variable as the type its setting has."""
    text = raw.strip()
    try:
        if kind in ("int", int):
            if not text.lstrip("+-").isascii() or not text.lstrip("+-").isdigit():
                raise ValueError(raw)
            return int(text)
        if kind in ("float", float):
            if not text.isascii() or "_" in text:
                raise ValueError(raw)
            return float(text)
        if kind in ("bool", bool):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind in ("Path", Path):
            return Path(text)
        if name in ("cors_origin", "guest_tenant"):
            return tuple(part for part in re.split(r"[,\s]+", text) if part)
    except ValueError:
        raise SettingsError(name, f"cannot read {raw!r} as {kind}") from None
    if name in ("sqlite_synchronous",):
        return text.upper()
    if name in ("log_level",):
        return text.lower()
    return raw
