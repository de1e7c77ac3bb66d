"""A minimal pycrdt-websocket server on uvicorn, as a user would write one: the reference Python relay.

    python -m benchmarks.servers.pycrdt_ws --port 0 [--store PATH | --memory]

``pycrdt.websocket.ASGIServer`` around a ``WebsocketServer`` (``auto_clean_rooms``: a room
is deleted when its last client leaves), served by ``uvicorn`` with its defaults
(``ws="auto"``, ``loop="auto"``), the room named by the URL path. With ``--store``
(the default configuration used by ``benchmarks.compare``), every room gets a
``pycrdt.store.SQLiteYStore`` on one SQLite file, as the pycrdt-websocket documentation
shows (a subclass that sets ``db_path``); a room loads its stored updates when it
opens (``ystore.apply_updates``, what Jupyter's collaboration server does) and YRoom
writes every update to the store after broadcasting it (its own behaviour, unchanged).
An ``exception_handler`` that logs (pycrdt-websocket's ``exception_logger``) keeps
one client's disconnect from tearing down the server. With ``--memory`` rooms have no store.

It prints ``pycrdt-websocket listening on http://127.0.0.1:PORT`` once the socket is
bound (``--port 0`` picks a free port). ``PycrdtServer`` runs it as a subprocess.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import uvicorn
from anyio import Event
from pycrdt.store import SQLiteYStore, YDocNotFound
from pycrdt.websocket import ASGIServer, WebsocketServer, YRoom, exception_logger

LOG = logging.getLogger("pycrdt_ws")
BANNER = "pycrdt-websocket listening on http://"


class StoredWebsocketServer(WebsocketServer):
    """Rooms backed by SQLiteYStore on one file; a room loads its history before anyone syncs."""

    def __init__(self, db_path: Path) -> None:
        super().__init__(rooms_ready=False, auto_clean_rooms=True, exception_handler=exception_logger, log=LOG)
        # pycrdt-store's documented way to choose the file: a subclass that sets db_path.
        self.store_class = type("BenchSQLiteYStore", (SQLiteYStore,), {"db_path": str(db_path)})
        self.loaded: dict[str, Event] = {}

    async def get_room(self, name: str) -> YRoom:
        if name not in self.rooms:
            ystore = self.store_class(path=name, log=LOG)
            room = YRoom(ready=False, ystore=ystore, exception_handler=exception_logger, log=LOG)
            self.rooms[name] = room
            self.loaded[name] = loaded = Event()
            assert self._task_group is not None
            await self._task_group.start(ystore.start)
            await self.start_room(room)
            with contextlib.suppress(YDocNotFound):
                await ystore.apply_updates(room.ydoc)
            room.ready = True  # from here on, updates are broadcast and stored
            await room.ydoc_observed.wait()
            loaded.set()
        room = self.rooms[name]
        await self.loaded[name].wait()  # a second client of a room that is loading waits for it
        return room

    async def delete_room(self, *, name: str | None = None, room: YRoom | None = None) -> None:
        if name is None:
            assert room is not None
            name = self.get_room_name(room)
        room = self.rooms[name]
        await super().delete_room(name=name)
        self.loaded.pop(name, None)
        if room.ystore is not None:
            await room.ystore.stop()


def raise_nofile_limit() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def create_store_file(store_class: type[SQLiteYStore]) -> None:
    """Create the database before any room opens.

    SQLiteYStore creates its tables when its first instance starts and finds no file; two rooms
    opening at once on a new file race there ("table yupdates already exists") and the loser's
    writes then wait forever. A deployment that has run once has the file, so create it up front.
    """
    async with store_class(path="/", log=LOG) as ystore:
        assert ystore.db_initialized is not None
        await ystore.db_initialized.wait()


async def serve(port: int, store: Path | None) -> None:
    websocket_server = (StoredWebsocketServer(store) if store is not None else
                        WebsocketServer(rooms_ready=True, auto_clean_rooms=True,
                                        exception_handler=exception_logger, log=LOG))
    if isinstance(websocket_server, StoredWebsocketServer):
        await create_store_file(websocket_server.store_class)
    app = ASGIServer(websocket_server)
    # IPPROTO_TCP as uvicorn's own bind (asyncio create_server) would: asyncio then sets TCP_NODELAY on
    # every accepted connection; without it a second small frame can wait 40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)  # connections queue until uvicorn accepts them, so the banner can come first
    config = uvicorn.Config(app, log_level="warning", lifespan="off", backlog=4096)
    server = uvicorn.Server(config)
    async with websocket_server:
        print(f"{BANNER}127.0.0.1:{sock.getsockname()[1]}", flush=True)
        await server.serve(sockets=[sock])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.servers.pycrdt_ws", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--store", type=Path, help="SQLite file for SQLiteYStore")
    group.add_argument("--memory", action="store_true", help="no store: rooms live in memory only")
    args = parser.parse_args(argv)
    raise_nofile_limit()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve(args.port, None if args.memory else args.store))
    return 0


class PycrdtServer:
    """``python -m benchmarks.servers.pycrdt_ws`` as a subprocess on a loopback port (kept across restarts)."""

    name = "pycrdt-websocket"

    def __init__(self, data_dir: Path, *, memory: bool = False) -> None:
        self.data_dir = data_dir
        self.memory = memory
        self.port = 0
        self.process: subprocess.Popen[str] | None = None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "ystore.sqlite3"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> PycrdtServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log: IO[str] = open(self.data_dir / "pycrdt_ws.log", "a")  # noqa: SIM115 - owned by the child
        where = ["--memory"] if self.memory else ["--store", str(self.db_path)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.servers.pycrdt_ws", "--port", str(self.port), *where],
            stdout=subprocess.PIPE, stderr=log, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
            cwd=Path(__file__).resolve().parents[2],
        )
        log.close()
        assert self.process.stdout is not None
        deadline = time.monotonic() + 20
        line = ""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line or line.startswith(BANNER):
                break
        if not line.startswith(BANNER):
            self.stop()
            raise RuntimeError(f"pycrdt-websocket server did not start; see {self.data_dir / 'pycrdt_ws.log'}")
        self.port = int(line.rsplit(":", 1)[1])
        return self

    def url(self, room: str) -> str:
        return f"ws://127.0.0.1:{self.port}/{room}"

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self._close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close()

    def _close(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
