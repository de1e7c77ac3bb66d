"""Serving an app of the relay's with uvicorn on a loopback port, inside a test's event loop."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import uvicorn
from starlette.applications import Starlette

from syncline.server.serve import server_config
from syncline.server.settings import Settings


@asynccontextmanager
async def serving(app: Starlette, settings: Settings, *, ws: str | None = None) -> AsyncIterator[str]:
    """Serve ``app`` (its lifespan left to the caller) as ``syncline serve`` configures uvicorn,
    on a loopback port; yield its ws:// base URL. ``ws`` picks another uvicorn WebSocket protocol."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = server_config(app, settings, lifespan="off", timeout_graceful_shutdown=2)
    if ws is not None:
        config.ws = ws
    server = uvicorn.Server(config)
    with sock:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            with anyio.fail_after(10):
                while not server.started:
                    await anyio.sleep(0.002)
            try:
                yield f"ws://127.0.0.1:{sock.getsockname()[1]}"
            finally:
                server.should_exit = True
