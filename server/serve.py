"""Run the relay under uvicorn: lock the data directory, bind, print how to connect, stop
cleanly on SIGTERM/SIGINT.

The application comes from the caller (the composition root's ``create_app``): this module
serves any Starlette app whose lifespan keeps a :class:`~syncline.server.relay.Relay` in
``app.state.relay``.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from syncline.engine.tokens import issue_token

from .auth import create_data_dir, load_or_create_secret
from .deadlines import guarded_http_protocol
from .errors import DataDirError, DataDirInUse, ListenError
from .gcpauses import freeze_startup_heap
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
    """Uvicorn, but on SIGTERM/SIGINT peers first get close code 1001 (going away), the banner
    is printed once the application has started, and a failed start raises its error.

    Uvicorn alone would close peers with 1012. The first signal starts a drain
    (peers closed, then uvicorn's own graceful shutdown flushes the store); a
    second SIGTERM or SIGINT forces the exit. When the application's lifespan fails
    (its store or fan-out cannot be opened), :meth:`startup` raises that error instead of
    uvicorn's bare exit, so the command line says in one line what went wrong.
    """

    def __init__(self, config: uvicorn.Config, app: Starlette, startup: _StartupErrors,
                 banner: Callable[[], None]) -> None:
        super().__init__(config)
        self._app = app
        self._startup = startup
        self._banner = banner
        self._exit_requested = False
        self._drain_deadline: float | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        except SystemExit:
            if self._startup.error is not None:
                raise self._startup.error from None
            raise
        if not self.should_exit:
            freeze_startup_heap()  # a full collection then walks only what peers brought
            self._banner()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._exit_requested:
            self.should_exit = self.force_exit = True
        self._exit_requested = True

    async def on_tick(self, counter: int) -> bool:
        if self._exit_requested and not self.should_exit:
            relay: Relay | None = getattr(self._app.state, "relay", None)
            if relay is None:
                self.should_exit = True
            elif self._drain_deadline is None:
                relay.shut_down_peers()
                self._drain_deadline = time.monotonic() + DRAIN_SECONDS
            elif not relay.connections or time.monotonic() > self._drain_deadline:
                self.should_exit = True
        return await super().on_tick(counter)


class _StartupErrors:
    """An ASGI wrapper that keeps the error which failed the application's lifespan startup.

    Starlette reports a failed startup with the traceback's text, which uvicorn would log;
    the wrapper keeps the exception itself (the leaf of a task group's exception group) and
    blanks the text, and :class:`_RelayServer` raises it for the command line to report.
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.error: BaseException | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def quiet_send(message: Any) -> None:
            if message["type"] == "lifespan.startup.failed":
                # Starlette sends this from inside its ``except`` block: the error is the one handled.
                self.error = _leaf(sys.exc_info()[1])
                message = {**message, "message": ""}
            await send(message)

        await self.app(scope, receive, quiet_send)


class _QuietStartupFailure(logging.Filter):
    """Drops uvicorn's "Application startup failed" once the error is kept: the command line says it."""

    def __init__(self, startup: _StartupErrors) -> None:
        super().__init__()
        self._startup = startup

    def filter(self, record: logging.LogRecord) -> bool:
        return self._startup.error is None or not str(record.msg).startswith("Application startup failed")


def _leaf(error: BaseException | None) -> BaseException | None:
    """The one error inside nested exception groups of one member each, else ``error`` itself."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port``; raises :class:`ListenError` saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets created as TCP, and
    # without it a second frame written right after a first waits for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)  # connections made before uvicorn starts wait in the backlog
    except socket.gaierror as exc:
        sock.close()
        raise ListenError(host, port, f"unknown host ({exc.strerror}); pass --host with an address or "
                                      "name of this machine, e.g. 127.0.0.1 or 0.0.0.0") from exc
    except OSError as exc:
        sock.close()
        raise ListenError(host, port, _listen_advice(exc)) from exc
    return sock


def _listen_advice(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return ("the port is in use (another relay or program listens there); stop it, or pass another "
                "--port (--port 0 picks a free one)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return "the address is not one of this machine's; pass --host 127.0.0.1, 0.0.0.0 or a local address"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges); pass a --port above 1023"
    return f"{exc.strerror or exc}; check --host and --port"


def lock_data_dir(data_dir: Path) -> LockFile:
    """Create ``data_dir`` if needed and take its lock (``DATA_DIR/syncline.lock``), never waiting.

    Raises :class:`DataDirInUse` if another relay holds it, :class:`DataDirError` if the
    directory or the lock file cannot be made.
    """
    path = data_dir / LOCK_FILE
    create_data_dir(data_dir)
    try:
        lock = acquire(path)
    except OSError as exc:
        raise DataDirError(data_dir, f"cannot lock {path} ({exc.strerror or exc}); pass a --data-dir "
                                     "this user can write") from exc
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
        # Client address and scheme from X-Forwarded-For/-Proto, only from these proxies.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
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
    startup = _StartupErrors(app)
    config = server_config(app, settings, lifespan="on", loop=settings.event_loop,
                           timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)
    config.app = startup
    store = describe_store(settings, settings.data_dir / STORE_FILE)
    token = None
    if generated:
        token = issue_token(settings.secret, DEV_TENANT, [f"{DEV_TENANT}/*"], ttl_seconds=DEV_TOKEN_TTL_SECONDS)

    def banner() -> None:
        base = f"{shown_host}:{port}"
        lines = [f"Syncline relay listening on http://{base} (store: {store})",
                 f"  WebSocket (y-websocket): ws://{base}/v1/sync/{{tenant}}/{{kind}}/{{id}}"]
        if token is not None:
            lines += [f"  Development token for tenant '{DEV_TENANT}' (valid 7 days), on the next line:",
                      token,
                      f"  export TOKEN={token}",
                      f"  e.g. ws://{base}/v1/sync/{DEV_TENANT}/cart/c-1?token=$TOKEN"]
        lines += banner_pages(f"http://{base}", pages, token)
        print("\n".join(lines), flush=True)

    server = _RelayServer(config, app, startup, banner)
    # Uvicorn re-raises the signal that stopped it once it is done; exit 0 instead.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    quiet = _QuietStartupFailure(startup)
    logging.getLogger("uvicorn.error").addFilter(quiet)
    try:
        server.run(sockets=[sock])
    finally:
        logging.getLogger("uvicorn.error").removeFilter(quiet)
    return 0 if server.started else 1
