"""Writers that misbehave the way real clients do: out of clock order, twice, in merged chunks.

``RawWriter`` is a y-websocket client with durable acks that sends exactly the updates
it is given, in the order given, and counts every write it sends (a sync step 2 or an
update) so a test can wait until the relay has acknowledged all of them. With a
``source`` document it answers the relay's sync step 1 the way every Yjs client does,
with everything the source holds that the relay lacks; without one it answers nothing.

``cart_writes`` makes the updates of one writer editing a cart the way the engine does:
each transaction writes the ``lines`` map and the ``ops`` array together, the shape
pycrdt integrates only in part when it gets a writer's updates out of clock order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup
from pycrdt import Array, Doc, Map
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from syncline.engine import encode_diff
from syncline.engine import protocol
from syncline.engine.protocol import Kind


def cart_writes(client_id: int, products: list[str], *, base: Doc | None = None) -> tuple[Doc, list[bytes]]:
    """A writer's document and the update of each of its transactions (one per product)."""
    doc = Doc(client_id=client_id)
    if base is not None:
        doc.apply_update(base.get_update())
    lines = doc.get("lines", type=Map)
    ops = doc.get("ops", type=Array)
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    for product in products:
        with doc.transaction():
            lines[product] = {"product": product, "by": client_id}
            ops.append({"op": "add", "product": product, "by": client_id})
    doc.unobserve(subscription)
    return doc, updates


def ops_of(doc: Doc) -> list[Any]:
    return doc.get("ops", type=Array).to_py() or []


def lines_of(doc: Doc) -> dict[str, Any]:
    return doc.get("lines", type=Map).to_py() or {}


@dataclass
class RawWriter:
    ws: ClientConnection
    source: Doc | None
    sent: int = 0
    labels: list[Any] = field(default_factory=list)
    """One entry per write sent, in order: the label given to :meth:`send`, None for a step 2 answer."""
    acked: int = 0
    asked: int = 0
    """Sync step 1 frames received from the relay after the first (requests for what it lacks)."""
    close_code: int | None = None
    changed: anyio.Event = field(default_factory=anyio.Event)
    _step1_seen: int = 0

    async def send(self, update: bytes, label: Any = None) -> None:
        self.sent += 1
        self.labels.append(label)
        await self.ws.send(protocol.sync_update(update))

    def acknowledged(self) -> list[Any]:
        """The labels of the writes acknowledged so far (step 2 answers left out)."""
        return [label for label in self.labels[: self.acked] if label is not None]

    async def wait_all_acked(self, timeout: float = 10.0) -> None:
        """Until every write sent so far is acknowledged (fails if the relay closes first)."""
        with anyio.fail_after(timeout):
            while self.acked < self.sent:
                assert self.close_code is None, f"closed with {self.close_code} at ack {self.acked}/{self.sent}"
                self.changed = anyio.Event()
                await self.changed.wait()

    async def wait_closed(self, timeout: float = 10.0) -> int:
        with anyio.fail_after(timeout):
            while self.close_code is None:
                self.changed = anyio.Event()
                await self.changed.wait()
        return self.close_code

    async def _run(self) -> None:
        try:
            async for frame in self.ws:
                assert isinstance(frame, bytes)
                message = protocol.decode(frame)
                if message.kind is Kind.STEP1:
                    self._step1_seen += 1
                    if self._step1_seen > 1:
                        self.asked += 1
                    if self.source is not None:
                        self.sent += 1
                        self.labels.append(None)
                        await self.ws.send(protocol.sync_step2(encode_diff(self.source, message.payload)))
                elif message.kind is Kind.EXTENSION:
                    body = protocol.decode_extension(message.payload)
                    if body["op"] == "ack":
                        self.acked = body["n"]
                self.changed.set()
        except ConnectionClosed:
            pass
        self.close_code = self.ws.close_code if self.ws.close_code is not None else 1006
        self.changed.set()


@asynccontextmanager
async def raw_writer(url: str, *, source: Doc | None = None) -> AsyncIterator[RawWriter]:
    async with connect(url, max_size=None) as ws:
        writer = RawWriter(ws, source)
        await ws.send(protocol.extension({"op": "hello", "acks": True}))
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer._run)
            try:
                yield writer
            finally:
                _stop(tg)


def _stop(tg: TaskGroup) -> None:
    tg.cancel_scope.cancel()
