"""A minimal y-websocket peer for tests: a pycrdt Doc kept in sync over a real WebSocket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from pycrdt import Doc
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from syncline.engine import encode_diff
from syncline.engine import protocol
from syncline.engine.protocol import Kind


@dataclass
class YPeer:
    """Applies every sync frame it receives; records everything else for assertions."""

    ws: ClientConnection
    doc: Doc = field(default_factory=Doc)
    acked: int = 0
    welcome: dict[str, Any] | None = None
    awareness: list[bytes] = field(default_factory=list)
    extensions: list[dict[str, Any]] = field(default_factory=list)
    """Every extension message received (type 100), welcome and acks included, in order."""
    synced: anyio.Event = field(default_factory=anyio.Event)
    changed: anyio.Event = field(default_factory=anyio.Event)
    ack_changed: anyio.Event = field(default_factory=anyio.Event)
    close_code: int | None = None

    def awareness_states(self) -> dict[int, str]:
        """The awareness states this peer has been told of, the newest clock of each client
        (client id -> its JSON state; ``"null"`` once it left)."""
        seen: dict[int, tuple[int, str]] = {}
        for payload in self.awareness:
            for entry in protocol.decode_awareness(payload):
                if entry.client_id not in seen or entry.clock >= seen[entry.client_id][0]:
                    seen[entry.client_id] = (entry.clock, entry.state)
        return {client: state for client, (_, state) in seen.items()}

    async def send_update(self, update: bytes) -> None:
        await self.ws.send(protocol.sync_update(update))

    async def edit(self, fn: Any) -> bytes:
        """Run ``fn(doc)`` and send the resulting update; return it."""
        before = self.doc.get_state()
        fn(self.doc)
        update = encode_diff(self.doc, before)
        await self.send_update(update)
        return update

    async def wait_acked(self, count: int, timeout: float = 5.0) -> None:
        with anyio.fail_after(timeout):
            while self.acked < count:
                self.ack_changed = anyio.Event()
                await self.ack_changed.wait()

    async def wait_until(self, predicate: Any, timeout: float = 5.0) -> None:
        with anyio.fail_after(timeout):
            while not predicate(self.doc):
                self.changed = anyio.Event()
                await self.changed.wait()

    async def run(self) -> None:
        try:
            async for frame in self.ws:
                assert isinstance(frame, bytes), "the relay sends binary frames only"
                self._on_frame(frame)
        except ConnectionClosed:
            pass
        if self.ws.close_code is not None:
            self.close_code = self.ws.close_code
        self.changed.set()
        self.ack_changed.set()

    def _on_frame(self, frame: bytes) -> None:
        message = protocol.decode(frame)
        if message.kind is Kind.STEP1:
            reply = protocol.sync_step2(encode_diff(self.doc, message.payload))
            self._send_soon(reply)
        elif message.kind in (Kind.STEP2, Kind.UPDATE):
            self.doc.apply_update(message.payload)
            if message.kind is Kind.STEP2:
                self.synced.set()
            self.changed.set()
        elif message.kind is Kind.AWARENESS:
            self.awareness.append(message.payload)
            self.changed.set()
        elif message.kind is Kind.EXTENSION:
            body = protocol.decode_extension(message.payload)
            self.extensions.append(body)
            self.changed.set()
            if body["op"] == "ack":
                self.acked = body["n"]
                self.ack_changed.set()
            elif body["op"] == "welcome":
                self.welcome = body
                self.ack_changed.set()

    def _send_soon(self, frame: bytes) -> None:
        self.replies.send_nowait(frame)

    replies: Any = None


@asynccontextmanager
async def ypeer(url: str, *, acks: bool = False, hello: bool = False, doc: Doc | None = None,
                **kwargs: Any) -> AsyncIterator[YPeer]:
    """Connect, do the sync handshake, and keep receiving in the background until exit.

    ``acks`` sends ``hello`` asking for acknowledgements; ``hello`` sends it without (the peer
    still parses extension messages, and waits for the relay's ``welcome``)."""
    async with connect(url, **{"max_size": None, **kwargs}) as ws:
        peer = YPeer(ws, doc or Doc())
        peer.replies, replies = anyio.create_memory_object_stream[bytes](100)
        async with anyio.create_task_group() as tg:
            tg.start_soon(peer.run)
            tg.start_soon(_send_replies, peer, replies)
            if acks or hello:
                await ws.send(protocol.extension({"op": "hello", "acks": acks}))
            await ws.send(protocol.sync_step1(peer.doc.get_state()))
            with anyio.fail_after(5):
                await peer.synced.wait()
            if acks:  # our answer to the relay's sync step 1 is write number 1
                await peer.wait_acked(1)
            elif hello:
                with anyio.fail_after(5):
                    while peer.welcome is None:
                        peer.ack_changed = anyio.Event()
                        await peer.ack_changed.wait()
            try:
                yield peer
            finally:
                peer.replies.close()
                tg.cancel_scope.cancel()


async def _send_replies(peer: YPeer, replies: Any) -> None:
    async with replies:
        async for frame in replies:
            try:
                await peer.ws.send(frame)
            except ConnectionClosed:
                return
