"""Frames written to a peer during one turn of the event loop reach its socket in one write, at
the end of that turn; past FLUSH_BYTES at once; never after a close. On real loopback sockets:
the transport is wrapped only to count its writes."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from syncline.server.wsprotocol import FLUSH_BYTES, TransportFrameWriter, turn_writes

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Collect(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.grew = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.data += data
        self.grew.set()

    async def until(self, size: int) -> bytes:
        async with asyncio.timeout(5):
            while len(self.data) < size:
                self.grew.clear()
                await self.grew.wait()
        return bytes(self.data)


class CountingTransport:
    """A real transport whose writes are counted (and, when ``fail`` is set, refused)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.real = transport
        self.writes: list[bytes] = []
        self.fail = False

    def write(self, data: bytes) -> None:
        if self.fail:
            raise RuntimeError("transport refused the write")
        self.writes.append(bytes(data))
        self.real.write(data)

    def is_closing(self) -> bool:
        return self.real.is_closing()


class Peer:
    """What the writer reads of uvicorn's WebSocket protocol, over a real socket."""

    def __init__(self, transport: CountingTransport, received: Collect) -> None:
        self.transport = transport
        self.received = received
        self.close_sent = False
        self.disconnected = False
        self.writable = asyncio.Event()
        self.writable.set()


@asynccontextmanager
async def peers(count: int) -> AsyncIterator[list[Peer]]:
    loop = asyncio.get_running_loop()
    accepted: list[Collect] = []

    def accept() -> Collect:
        accepted.append(Collect())
        return accepted[-1]

    server = await loop.create_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    made: list[Peer] = []
    try:
        for _ in range(count):
            transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
            made.append(Peer(CountingTransport(transport), Collect()))
        async with asyncio.timeout(5):
            while len(accepted) < count:
                await asyncio.sleep(0.001)
        for peer, received in zip(made, accepted, strict=True):
            peer.received = received
        yield made
    finally:
        for peer in made:
            peer.transport.real.close()
        server.close()
        await server.wait_closed()


def writer_for(peer: Peer) -> TransportFrameWriter:
    protocol: Any = peer
    return TransportFrameWriter(protocol, turn_writes(asyncio.get_running_loop()))


async def test_frames_written_in_one_turn_reach_the_socket_in_one_write_in_order() -> None:
    async with peers(2) as (till, phone):
        to_till, to_phone = writer_for(till), writer_for(phone)
        for frame in (b"one", b"two", b"three"):
            to_till.write(frame)
        to_phone.write(b"solo")
        assert till.transport.writes == [] and phone.transport.writes == []  # not before the turn ends
        await asyncio.sleep(0)
        assert till.transport.writes == [b"onetwothree"]
        assert phone.transport.writes == [b"solo"]
        to_till.write(b"four")  # a later turn: a write of its own
        await asyncio.sleep(0)
        assert till.transport.writes == [b"onetwothree", b"four"]
        assert await till.received.until(15) == b"onetwothreefour"
        assert await phone.received.until(4) == b"solo"


async def test_frames_pending_past_the_bound_are_written_at_once() -> None:
    async with peers(1) as (peer,):
        writer = writer_for(peer)
        small = [bytes([i]) * 1_000 for i in range(10)]
        for frame in small:
            writer.write(frame)
        assert peer.transport.writes == []
        big = b"B" * FLUSH_BYTES
        writer.write(big)  # the pending bytes pass the bound: everything goes now, in order
        assert peer.transport.writes == [b"".join(small) + big]
        writer.write(b"after")
        await asyncio.sleep(0)
        assert peer.transport.writes[1:] == [b"after"]
        assert await peer.received.until(10_000 + FLUSH_BYTES + 5) == b"".join(small) + big + b"after"


async def test_nothing_pending_is_written_after_a_close_was_sent_or_while_the_transport_closes() -> None:
    async with peers(2) as (closed, closing):
        to_closed, to_closing = writer_for(closed), writer_for(closing)
        to_closed.write(b"late")
        closed.close_sent = True
        to_closing.write(b"late")
        closing.transport.real.close()
        await asyncio.sleep(0)
        assert closed.transport.writes == [] and closing.transport.writes == []


async def test_a_transport_that_fails_its_write_costs_the_other_peers_nothing(caplog: pytest.LogCaptureFixture) -> None:
    async with peers(2) as (broken, fine):
        to_broken, to_fine = writer_for(broken), writer_for(fine)
        broken.transport.fail = True
        with caplog.at_level(logging.ERROR, logger="syncline.wsprotocol"):
            to_broken.write(b"lost")
            to_fine.write(b"kept")
            await asyncio.sleep(0)
        assert fine.transport.writes == [b"kept"]
        assert "writing frames to a peer's transport failed" in caplog.text
        broken.transport.fail = False
        to_broken.write(b"next")  # the writer is not stuck: its next turn is written
        await asyncio.sleep(0)
        assert broken.transport.writes == [b"next"]


def test_a_loop_s_turn_writes_are_forgotten_with_the_loop() -> None:
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def use() -> None:
        loop = asyncio.get_running_loop()
        assert turn_writes(loop) is turn_writes(loop)
        loops.append(weakref.ref(loop))

    for _ in range(3):
        asyncio.run(use())
    gc.collect()
    assert [ref() for ref in loops] == [None, None, None]
