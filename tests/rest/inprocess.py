"""The relay run inside the test process: the app of ``create_app``, no subprocess, no CLI.

:class:`InProcessRelay` builds the app with test :class:`Settings` on its own data
directory and enters the app's own lifespan (store, relay tasks) in an event loop on a
thread of its own (an anyio blocking portal), so that synchronous and asynchronous tests
alike can use it. Tests reach the app two ways:

- :meth:`InProcessRelay.client`: a synchronous httpx client whose transport hands each
  request to ``httpx.ASGITransport`` in the app's loop: no socket; an exception in the app
  fails the test instead of becoming a 500;
- :attr:`InProcessRelay.http_url` and :meth:`InProcessRelay.url_for`: a real loopback socket
  served by uvicorn in that same loop with the relay's own uvicorn configuration, for what
  needs one: SSE streams (``ASGITransport`` reads a response whole), WebSocket peers,
  clients of their own on other threads or event loops. Uvicorn starts on first use.

Addresses and tokens are those of :class:`RelayProcess`, so a test takes either.
What needs a process (signals, SIGKILL, exit codes, the CLI) stays on ``RelayProcess``.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import uvicorn
from anyio.from_thread import BlockingPortal, start_blocking_portal
from starlette.applications import Starlette

from syncline.app.asgi import create_app
from syncline.engine.tokens import issue_token
from syncline.server.endpoints import relay_of
from syncline.server.serve import server_config
from syncline.server.settings import Settings

from harness.relay_process import SECRET

Clock = Callable[[], float]
STARTUP_SECONDS = 10.0


class _LogTail(logging.Handler):
    """Keeps the text of the records logged while a relay runs (warnings and worse)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class InProcessRelay:
    """One relay app in this process on ``data_dir``; ``settings`` override :class:`Settings` fields."""

    def __init__(self, data_dir: Path, *, clock: Clock = time.time, **settings: Any) -> None:
        self.data_dir = data_dir
        self.clock = clock
        # REST rate limits out of reach unless the test sets them (as RelayProcess does).
        limits = {name: 1_000_000 for name in ("rest_burst", "rest_rate_per_second", "rest_tenant_burst",
                                                "rest_tenant_rate_per_second")}
        self.settings = Settings(data_dir=data_dir, secret=SECRET, port=0, **{**limits, **settings})
        self.port = 0
        self.app: Starlette | None = None
        self._portal: BlockingPortal | None = None
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._running: AbstractContextManager[Starlette] | None = None
        self._server: uvicorn.Server | None = None
        self._serving: anyio.Event | None = None
        self._tasks: anyio.abc.TaskGroup | None = None
        self._log = _LogTail()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, *, clock: Clock | None = None, **settings: Any) -> InProcessRelay:
        """Build the app and enter its lifespan; given ``settings`` (and ``clock``) replace the
        current ones, as flags would on a restarted relay. Serves the previous port again."""
        assert self._portal is None, "already running"
        if clock is not None:
            self.clock = clock
        if settings:
            self.settings = replace(self.settings, **settings)
        listen = self.port != 0
        logging.getLogger().addHandler(self._log)
        self._portal_cm = start_blocking_portal("asyncio")
        self._portal = self._portal_cm.__enter__()
        try:
            self._running = self._portal.wrap_async_context_manager(self._run())
            self.app = self._running.__enter__()
            if listen:
                self._portal.call(self._listen)
        except BaseException:
            self._close_portal()
            raise
        return self

    def stop(self) -> None:
        """Stop as SIGTERM stops a relay: peers and streams told first, the store flushed."""
        if self._running is not None:
            running, self._running = self._running, None
            try:
                running.__exit__(None, None, None)
            finally:
                self._close_portal()

    def terminate(self) -> int:
        """:meth:`stop`, answering 0 as a relay process that stopped cleanly exits with."""
        self.stop()
        return 0

    def restart(self, **settings: Any) -> InProcessRelay:
        self.stop()
        return self.start(**settings)

    def call_in_loop(self, func: Callable[..., Any], *args: Any) -> Any:
        """Call ``func(*args)`` in the relay's event loop thread (a blocking call blocks the relay)."""
        assert self._portal is not None, "the relay is not running"
        return self._portal.call(func, *args)

    @property
    def running(self) -> bool:
        return self._running is not None and self._portal is not None and self.app is not None

    def _close_portal(self) -> None:
        self.app = None
        self._server = None
        logging.getLogger().removeHandler(self._log)
        if self._portal_cm is not None:
            portal_cm, self._portal_cm, self._portal = self._portal_cm, None, None
            portal_cm.__exit__(None, None, None)

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[Starlette]:
        """The app inside its lifespan; on the way out, uvicorn (if serving) stops before it."""
        app = create_app(self.settings, clock=self.clock)
        async with app.router.lifespan_context(app), anyio.create_task_group() as tg:
            self._tasks = tg
            try:
                yield app
            finally:
                relay_of(app).shut_down_peers()
                if self._server is not None:
                    self._server.should_exit = True
                    assert self._serving is not None
                    with anyio.fail_after(STARTUP_SECONDS):
                        await self._serving.wait()

    async def _listen(self) -> None:
        """Serve the app on a loopback port (the previous one after a restart) with uvicorn."""
        if self._server is not None:
            return
        assert self.app is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(512)
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(server_config(self.app, self.settings, lifespan="off",
                                              timeout_graceful_shutdown=2))
        self._server, self._serving = server, anyio.Event()
        serving = self._serving

        async def serve() -> None:
            try:
                await server.serve(sockets=[sock])
            finally:
                sock.close()
                serving.set()

        assert self._tasks is not None
        self._tasks.start_soon(serve)
        with anyio.fail_after(STARTUP_SECONDS):
            while not server.started:
                if serving.is_set():
                    raise RuntimeError(f"uvicorn did not start:\n{self.log()}")
                await anyio.sleep(0.002)

    def log(self) -> str:
        """What the relay logged at warning level or worse (tracebacks included)."""
        return "\n".join(self._log.lines)

    # -- clients, addresses and tokens ---------------------------------------------------

    def client(self, token: str | None = None) -> httpx.Client:
        """A synchronous client of the app through ``httpx.ASGITransport``, with ``token`` if given."""
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx.Client(transport=_PortalTransport(self), base_url="http://relay.test", headers=headers,
                             timeout=10.0)

    @property
    def http_url(self) -> str:
        if self._server is None:
            assert self._portal is not None, "the relay is not running"
            self._portal.call(self._listen)
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str, token: str | None = None) -> str:
        base = f"{self.http_url.replace('http://', 'ws://')}/v1/sync/{name}"
        return base if token is None else f"{base}?token={token}"

    def token(self, tenant: str, *patterns: str, read_only: bool = False, ttl: int | None = None) -> str:
        docs = list(patterns) or [f"{tenant}/*"]
        return issue_token(SECRET, tenant, docs, read_only=read_only, ttl_seconds=ttl)

    def url_for(self, name: str, *, read_only: bool = False) -> str:
        """A URL with a token for exactly this document."""
        return self.url(name, self.token(name.split("/", 1)[0], name, read_only=read_only))


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = list(chunks)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


class _PortalTransport(httpx.BaseTransport):
    """Hands each request of a synchronous client to ``httpx.ASGITransport`` in the relay's loop.

    The request body keeps its chunks (a streamed body stays streamed for the app); the
    response is read whole there, as ``ASGITransport`` does anyway.
    """

    def __init__(self, relay: InProcessRelay) -> None:
        self._relay = relay

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        chunks = list(request.stream)
        portal, app = self._relay._portal, self._relay.app
        if portal is None or app is None:
            raise httpx.ConnectError("the relay is not running", request=request)
        status, headers, body = portal.call(_send, app, request, chunks)
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body), request=request)


async def _send(app: Starlette, request: httpx.Request,
                chunks: list[bytes]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    forwarded = httpx.Request(request.method, request.url, headers=request.headers, stream=_Chunks(chunks),
                              extensions=request.extensions)
    response = await httpx.ASGITransport(app=app).handle_async_request(forwarded)
    body = b"".join([part async for part in response.aiter_raw()])
    return response.status_code, response.headers.raw, body
