"""Run the relay under uvicorn: lock the data directory, bind, print how to connect, stop
cleanly on SIGTERM/SIGINT.

The application comes from the caller (the composition root's ``create_app``): this module
serves any Starlette app whose lifespan keeps a :class:`~syncline.server.relay.Relay` in
``app.state.relay``.
"""

from __future__ import annotations

import logging
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from syncline.engine.tokens import issue_token

from .auth import load_or_create_secret
from .deadlines import guarded_http_protocol
from .errors import DataDirError, DataDirInUse
from .lockfile import LockFile, acquire, holder_pid
from .logs import configure_logging
from .relay import STORE_FILE, Relay
from .settings import Settings
from .store.factory import describe_store
from .wsprotocol import FrameWebSocketProtocol

log = logging.getLogger("syncline.serve")

DEV_TENANT = "demo"
DEV_TOKEN_TTL_SECONDS = 7 * 24 * 3600
GRACEFUL_SHUTDOWN_SECONDS = 10
DRAIN_SECONDS = 3.0
AppFactory = Callable[[Settings], Starlette]
LOCK_FILE = "syncline.lock"
"""The data directory's lock file: its holder is the one relay running on that directory."""


@dataclass(frozen=True)
class Page:
    """A browser page of the application, announced in the banner at ``path``.

    ``takes_token``: the page reads a token (and its tenant) from the address's fragment,
    ``#token=...&tenant=...``, so the banner gives it the development token when there is one.
    A fragment never reaches the server, so the token stays out of access logs.
    """

    label: str
    path: str
    takes_token: bool = False


def banner_pages(base: str, pages: Sequence[Page], token: str | None) -> list[str]:
    """The banner's lines for ``pages`` on ``base`` (``http://host:port``)."""
    lines = []
    for page in pages:
        if page.takes_token and token is not None:
            lines.append(f"  {page.label} (tenant '{DEV_TENANT}'): {base}{page.path}#token={token}&tenant={DEV_TENANT}")
        elif page.takes_token:
            lines.append(f"  {page.label}: {base}{page.path}#token=TOKEN&tenant=TENANT (a token of `syncline token`)")
        else:
            lines.append(f"  {page.label}: {base}{page.path}")
    return lines


class _RelayServer(uvicorn.Server):
    """Uvicorn, but on SIGTERM/SIGINT peers first get close code 1001 (going away).

    Uvicorn alone would close them with 1012. The first signal starts a drain
    (peers closed, then uvicorn's own graceful shutdown flushes the store); a
    second SIGTERM or SIGINT forces the exit.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit_requested = False
        self._drain_deadline: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._exit_requested:
            self.should_exit = self.force_exit = True
        self._exit_requested = True

    async def on_tick(self, counter: int) -> bool:
        if self._exit_requested and not self.should_exit:
            relay = _relay_of(self.config)
            if relay is None:
                self.should_exit = True
            elif self._drain_deadline is None:
                relay.shut_down_peers()
                self._drain_deadline = time.monotonic() + DRAIN_SECONDS
            elif not relay.connections or time.monotonic() > self._drain_deadline:
                self.should_exit = True
        return await super().on_tick(counter)


def _relay_of(config: uvicorn.Config) -> Relay | None:
    app = config.app
    return getattr(app.state, "relay", None) if isinstance(app, Starlette) else None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets created as TCP, and
    # without it a second frame written right after a first waits for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)  # connections made before uvicorn starts wait in the backlog
    return sock


def lock_data_dir(data_dir: Path) -> LockFile:
    """Create ``data_dir`` if needed and take its lock (``DATA_DIR/syncline.lock``), never waiting.

    Raises :class:`DataDirInUse` if another relay holds it, :class:`DataDirError` if the
    directory or the lock file cannot be made.
    """
    path = data_dir / LOCK_FILE
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # 0700, as the secret's directory
    except OSError as exc:
        raise DataDirError(data_dir, f"cannot create it ({exc.strerror or exc})") from exc
    try:
        lock = acquire(path)
    except OSError as exc:
        raise DataDirError(data_dir, f"cannot lock {path} ({exc.strerror or exc})") from exc
    if lock is None:
        raise DataDirInUse(data_dir, holder_pid(path))
    return lock


def server_config(app: Starlette, settings: Settings, **options: Any) -> uvicorn.Config:
    """Uvicorn's configuration for the relay ``app``: its guarded protocols, message limits and
    keepalive from ``settings``, and ``options`` (lifespan, loop, shutdown timeout) as given.

    :func:`run_server` serves with it; tests use it to serve an app in their own process.
    """
    return uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        # uvicorn's "websockets-sansio", aborting a peer that never reads, its transport open to whole frames
        ws=FrameWebSocketProtocol,
        ws_max_size=settings.max_message_bytes + 65_536,
        # Compressing each frame per recipient would undo "encode each broadcast once".
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ws_ping_seconds,
        ws_ping_timeout=settings.ws_ping_seconds,
        http=guarded_http_protocol(settings.request_timeout_seconds),  # uvicorn has no request deadline
        **options,
    )


def run_server(settings: Settings, create_app: AppFactory, pages: Sequence[Page] = ()) -> int:
    """Run the relay application ``create_app(settings)`` until it is stopped; return the exit status.

    The banner gives the addresses of the application's browser ``pages``.

    The data directory's lock is taken first, before the secret, the store and the port,
    and held until the relay has stopped: a second relay on the directory is refused
    before it opens anything or prints its banner.
    """
    configure_logging(settings.log_json, settings.log_level)
    with lock_data_dir(settings.data_dir):
        return _run_locked(settings, create_app, pages)


def _run_locked(settings: Settings, create_app: AppFactory, pages: Sequence[Page]) -> int:
    generated = settings.secret is None
    settings = replace(settings, secret=settings.secret or load_or_create_secret(settings.data_dir),
                       demo_catalog=settings.demo_catalog or generated)
    assert settings.secret is not None
    sock = _bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    app = create_app(settings)
    config = server_config(app, settings, lifespan="on", loop=settings.event_loop,
                           timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)
    server = _RelayServer(config)
    store = describe_store(settings, settings.data_dir / STORE_FILE)
    print(f"Syncline relay listening on http://{shown_host}:{port} (store: {store})", flush=True)
    print(f"  WebSocket (y-websocket): ws://{shown_host}:{port}/v1/sync/{{tenant}}/{{kind}}/{{id}}", flush=True)
    token = None
    if generated:
        token = issue_token(settings.secret, DEV_TENANT, [f"{DEV_TENANT}/*"], ttl_seconds=DEV_TOKEN_TTL_SECONDS)
        print(f"  Development token for tenant '{DEV_TENANT}' (valid 7 days):", flush=True)
        print(f"    ws://{shown_host}:{port}/v1/sync/{DEV_TENANT}/cart/c-1?token={token}", flush=True)
    for line in banner_pages(f"http://{shown_host}:{port}", pages, token):
        print(line, flush=True)
    # Uvicorn re-raises the signal that stopped it once it is done; exit 0 instead.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run(sockets=[sock])
    return 0 if server.started else 1  # uvicorn returns without starting when the lifespan fails

