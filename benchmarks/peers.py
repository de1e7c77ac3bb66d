"""The servers ``benchmarks.compare`` runs side by side, and a small Python y-websocket peer.

Every server is a real subprocess on a loopback port with the same handle: ``start``
(again on the same port after a stop or a kill), ``kill`` (SIGKILL), ``stop``, ``pid``,
``ws_base`` + ``token`` for the Node clients (``benchmarks/js``), and ``url(room)`` for
Python peers:

- ``SynclineServer``: ``syncline serve`` through ``harness.relay_process.RelayProcess``
  (SQLite store, ``synchronous=FULL``, durable acks for clients that ask).
- ``NodeServer``: ``@y/websocket-server`` (``benchmarks.relay.ReferenceServer``): rooms in memory.
- ``PycrdtServer``: ``benchmarks/servers/pycrdt_ws.py``: pycrdt-websocket on uvicorn with
  ``SQLiteYStore``.
- ``SynclineAsgiServer``: Syncline sending every frame through ASGI (the fallback send path),
  to measure the relay's own send path against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pycrdt import Doc, Map
from syncline.engine import protocol
from syncline.engine.protocol import Kind
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from benchmarks.pinning import NONE as NO_PINNING
from benchmarks.pinning import Pinning
from benchmarks.procs import ReferenceServer
from benchmarks.servers.pycrdt_ws import PycrdtServer as _PycrdtProcess
from harness.relay_process import RelayProcess

TENANT = "bench"


class Server(Protocol):
    key: str
    label: str
    persists: bool
    acks: bool

    def start(self) -> Server: ...
    def stop(self) -> None: ...
    def kill(self) -> None: ...
    @property
    def pid(self) -> int: ...
    @property
    def ws_base(self) -> str: ...
    @property
    def token(self) -> str | None: ...
    def url(self, room: str) -> str: ...


class SynclineServer:
    key, label, persists, acks = "syncline", "Syncline", True, True

    def __init__(self, data_dir: Path, flags: list[str]) -> None:
        self.relay = RelayProcess(data_dir, list(flags))

    def start(self) -> SynclineServer:
        self.relay.start()
        return self

    def stop(self) -> None:
        if self.relay.process is not None and self.relay.process.poll() is None:
            with contextlib.suppress(Exception):
                self.relay.terminate(timeout=30)
        self.relay.stop()

    def kill(self) -> None:
        self.relay.kill()
        self.relay.stop()

    @property
    def pid(self) -> int:
        assert self.relay.process is not None
        return self.relay.process.pid

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.relay.port}/v1/sync"

    @property
    def token(self) -> str | None:
        return self.relay.token(TENANT, f"{TENANT}/*")

    def url(self, room: str) -> str:
        return self.relay.url(room, self.token)


class SynclineAsgiServer(SynclineServer):
    """Syncline with every frame sent through ASGI (``benchmarks/servers/syncline_asgi.py``)."""

    key, label = "syncline-asgi", "Syncline (ASGI send)"

    def __init__(self, data_dir: Path, flags: list[str]) -> None:
        self.relay = RelayProcess(data_dir, list(flags), module="benchmarks.servers.syncline_asgi")


class NodeServer:
    key, label, persists, acks = "node", "Node reference", False, False

    def __init__(self, data_dir: Path, flags: list[str] | None = None) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.server = ReferenceServer(data_dir / "node.log")

    def start(self) -> NodeServer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def kill(self) -> None:
        assert self.server.process is not None
        self.server.process.kill()
        self.server.process.wait(timeout=10)
        self.server.stop()

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}"

    @property
    def token(self) -> str | None:
        return None

    def url(self, room: str) -> str:
        return f"{self.ws_base}/{room}"


class PycrdtServer:
    key, label, persists, acks = "pycrdt", "pycrdt-websocket", True, False

    def __init__(self, data_dir: Path, flags: list[str] | None = None) -> None:
        self.process = _PycrdtProcess(data_dir)

    def start(self) -> PycrdtServer:
        self.process.start()
        return self

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.process.port}"

    @property
    def token(self) -> str | None:
        return None

    def url(self, room: str) -> str:
        return self.process.url(room)


SERVERS: dict[str, Callable[[Path, list[str]], Server]] = {
    "syncline": SynclineServer, "node": NodeServer, "pycrdt": PycrdtServer, "syncline-asgi": SynclineAsgiServer,
}
LABELS = {key: cls.label for key, cls in SERVERS.items()}  # type: ignore[attr-defined]


@contextlib.contextmanager
def running(key: str, data_dir: Path, flags: list[str] | None = None, pinning: Pinning = NO_PINNING) -> Any:
    server = SERVERS[key](data_dir, list(flags or [])).start()
    pinning.pin_server(server.pid)
    try:
        yield server
    finally:
        server.stop()


class Peer:
    """A y-websocket peer on a pycrdt Doc: applies what it receives, counts durable acks if asked."""

    def __init__(self, url: str, *, acks: bool = False, client_id: int | None = None) -> None:
        self.url = url
        self.acks = acks
        self.doc = Doc(client_id=client_id) if client_id is not None else Doc()
        self.map = self.doc.get("m", type=Map)
        self.writes = 0  # sync writes sent (what the relay's ack counter counts)
        self.acked = 0
        self.synced = asyncio.Event()
        self.changed = asyncio.Event()
        self.closed = False
        self.ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Peer:
        self.ws = await connect(self.url, max_size=None, compression=None, open_timeout=30, ping_interval=None)
        self._reader = asyncio.create_task(self._read())
        if self.acks:
            await self.ws.send(protocol.extension({"op": "hello", "acks": True}))
        await self.ws.send(protocol.sync_step1(self.doc.get_state()))
        await asyncio.wait_for(self.synced.wait(), 60)
        if self.acks:
            await self.wait_for(lambda: self.acked >= self.writes, 30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for frame in self.ws:
                if not isinstance(frame, bytes):
                    continue
                message = protocol.decode(frame)
                if message.kind is Kind.STEP1:
                    await self.ws.send(protocol.sync_step2(self.doc.get_update(message.payload)))
                    self.writes += 1
                elif message.kind in (Kind.STEP2, Kind.UPDATE):
                    self.doc.apply_update(message.payload)
                    if message.kind is Kind.STEP2:
                        self.synced.set()
                elif message.kind is Kind.EXTENSION:
                    body = protocol.decode_extension(message.payload)
                    if body.get("op") == "ack":
                        self.acked = int(body["n"])
                self.changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            self.changed.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds; False on timeout or when the connection closed."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.closed:
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return True

    async def set_key(self, key: str, value: Any) -> None:
        """One transaction setting one key of map "m", sent as one update."""
        before = self.doc.get_state()
        self.map[key] = value
        await self.send_update(self.doc.get_update(before))

    async def send_update(self, update: bytes) -> None:
        assert self.ws is not None
        await self.ws.send(protocol.sync_update(update))
        self.writes += 1


async def first_sync(url: str, root: str = "m") -> tuple[float, Doc]:
    """Connect, send sync step 1 with an empty state vector, wait for step 2: (seconds, the doc)."""
    t0 = time.perf_counter()
    doc = Doc()
    async with connect(url, max_size=None, compression=None, open_timeout=60, ping_interval=None) as ws:
        await ws.send(protocol.sync_step1(doc.get_state()))
        while True:
            message = protocol.decode(await asyncio.wait_for(ws.recv(), 60))
            if message.kind is Kind.STEP2:
                elapsed = time.perf_counter() - t0
                doc.apply_update(message.payload)
                return elapsed, doc
