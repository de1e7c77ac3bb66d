"""The receive path's own frame reading: a peer's whole binary frames go to its inbox without
the websockets parser; everything else still goes to the parser, at a frame boundary.

Every test runs a real uvicorn on 127.0.0.1 (the relay's own protocol) and a raw TCP client
that writes frames in the chunks the test picks: one byte at a time, all at once, cut at
random places, with the handshake request in the same write as its first frames."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream
from pycrdt import Doc
from websockets.client import ClientProtocol
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from syncline.engine import closecodes, encode_diff, protocol
from syncline.engine.protocol import Kind
from syncline.server.peerframes import BINARY, CONTROL, OTHER, SHORT, apply_mask, frame_at

from .test_send_path import append, op_numbers, recording, served_relay

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def masked(opcode: Opcode, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    """One client frame as a browser writes it (masked), or unmasked when asked."""
    return Frame(opcode, payload, fin=fin).serialize(mask=mask, extensions=[])


# -- frame_at ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 70_000])
def test_a_whole_binary_frame_of_every_length_form_is_found_with_its_payload(size: int) -> None:
    payload = os.urandom(size)
    frame = masked(Opcode.BINARY, payload)
    data = b"junk" + frame + b"next"
    kind, start, end = frame_at(data, 4, 1 << 20)
    assert kind == BINARY and end == 4 + len(frame)
    assert apply_mask(data[start:end], data[start - 4:start]) == payload


def test_a_frame_cut_short_says_how_many_bytes_make_it_whole() -> None:
    frame = masked(Opcode.BINARY, b"x" * 300)  # 16-bit length form: 8 header bytes
    for cut in range(len(frame)):
        kind, _, end = frame_at(frame[:cut], 0, 1 << 20)
        if cut < 2:
            assert (kind, end) == (SHORT, 2)
        elif cut < 4:
            assert (kind, end) == (SHORT, 4)
        else:
            assert (kind, end) == (BINARY, len(frame))
    long_frame = masked(Opcode.BINARY, b"y" * 70_000)  # 64-bit length form
    assert frame_at(long_frame[:9], 0, 1 << 20)[::2] == (SHORT, 10)


def test_control_frames_and_everything_the_relay_does_not_read_itself_are_told_apart() -> None:
    assert frame_at(masked(Opcode.PING, b"p"), 0, 100)[0] == CONTROL
    assert frame_at(masked(Opcode.PONG, b""), 0, 100)[0] == CONTROL
    assert frame_at(masked(Opcode.CLOSE, Close(1000, "").serialize()), 0, 100)[0] == CONTROL
    for other in (
        masked(Opcode.TEXT, b"hi"),
        masked(Opcode.BINARY, b"part", fin=False),
        masked(Opcode.CONT, b"rest"),
        masked(Opcode.BINARY, b"bare", mask=False),
        masked(Opcode.BINARY, b"z" * 101),  # over max_size
        bytes([0xC2]) + masked(Opcode.BINARY, b"rsv1")[1:],  # a reserved bit set
    ):
        assert frame_at(other, 0, 100)[0] == OTHER


# -- a live relay ---------------------------------------------------------------------------


@dataclass
class RawPeer:
    """A WebSocket client on a plain TCP stream: the test writes the bytes, in its own chunks."""

    stream: SocketStream
    client: ClientProtocol
    received: list[Frame] = field(default_factory=list)

    async def write(self, data: bytes, chunks: Callable[[bytes], list[bytes]] = lambda d: [d]) -> None:
        for chunk in chunks(data):
            await self.stream.send(chunk)

    async def until(self, done: Callable[[list[Frame]], bool], timeout: float = 10.0) -> list[Frame]:
        with anyio.fail_after(timeout):
            while not done(self.received):
                if self.client.state is State.CLOSED:
                    break
                try:
                    data = await self.stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    self.client.receive_eof()
                else:
                    self.client.receive_data(data)
                for event in self.client.events_received():
                    if isinstance(event, Frame):
                        self.received.append(event)
        return self.received

    def acks(self) -> list[int]:
        found = []
        for frame in self.received:
            if frame.opcode is Opcode.BINARY:
                message = protocol.decode(bytes(frame.data))
                if message.kind is Kind.EXTENSION:
                    body = protocol.decode_extension(message.payload)
                    if body["op"] == "ack":
                        found.append(body["n"])
        return found


@asynccontextmanager
async def raw_peer(url: str, first: bytes = b"") -> AsyncIterator[RawPeer]:
    """Open a WebSocket by hand; ``first`` goes in the same write as the handshake request."""
    client = ClientProtocol(parse_uri(url), max_size=None)
    client.send_request(client.connect())
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    async with await anyio.connect_tcp(host, int(port)) as stream:
        await stream.send(b"".join(client.data_to_send()) + first)
        with anyio.fail_after(10):
            while client.state is State.CONNECTING:
                client.receive_data(await stream.receive())
        peer = RawPeer(stream, client)
        for event in client.events_received():
            if isinstance(event, Frame):
                peer.received.append(event)
        yield peer


def updates(count: int, *, size: int = 8) -> list[bytes]:
    source = Doc()
    out = []
    for i in range(count):
        before = source.get_state()
        append({"i": i, "pad": "p" * size})(source)
        out.append(encode_diff(source, before))
    return out


def hello_and_updates(count: int, *, size: int = 8) -> list[bytes]:
    return [protocol.extension({"op": "hello", "acks": True}),
            *(protocol.sync_update(update) for update in updates(count, size=size))]


class ParserCalls:
    """Counts the bytes the websockets parser of the newest connection is handed."""

    def __init__(self, connection: Any) -> None:
        self.protocol = connection._writer._protocol
        conn = self.protocol.conn
        real = conn.receive_data
        self.calls: list[int] = []

        def counted(data: bytes) -> None:
            self.calls.append(len(data))
            real(data)

        conn.receive_data = counted


def one_byte_each(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


def random_cuts(seed: int) -> Callable[[bytes], list[bytes]]:
    def cut(data: bytes) -> list[bytes]:
        rng = random.Random(seed)
        pieces, pos = [], 0
        while pos < len(data):
            step = rng.choice((1, 2, 3, 5, 7, 13, 64, 500))
            pieces.append(data[pos:pos + step])
            pos += step
        return pieces
    return cut


CHUNKINGS: dict[str, Callable[[bytes], list[bytes]]] = {
    "all at once": lambda d: [d],
    "one byte at a time": one_byte_each,
    "random cuts 1": random_cuts(1),
    "random cuts 2": random_cuts(2),
}


@pytest.mark.parametrize("chunking", list(CHUNKINGS))
async def test_binary_messages_in_any_chunks_reach_the_room_in_order_without_the_parser(
        tmp_path: Path, chunking: str) -> None:
    """Updates of the 7-, 16- and 64-bit length forms, written in whatever pieces: each is
    acknowledged in order and broadcast, and the websockets parser is handed none of them."""
    name = f"acme/cart/cut-{chunking.replace(' ', '-')}"
    small, medium, large = updates(1, size=4)[0], updates(1, size=400)[0], updates(1, size=70_000)[0]
    async with served_relay(tmp_path, "frames") as served, recording(served.url(name)) as reader:
        known = [await served.newest([])]  # the reader's
        async with raw_peer(served.url(name)) as peer:
            calls = ParserCalls(await served.newest(known))
            messages = [protocol.extension({"op": "hello", "acks": True})]
            messages += [protocol.sync_update(u) for u in (small, medium, large)]
            data = b"".join(masked(Opcode.BINARY, m) for m in messages)
            await peer.write(data, CHUNKINGS[chunking])
            await peer.until(lambda _: peer.acks()[-1:] == [3])
            assert peer.acks() == sorted(set(peer.acks()))  # in order, each once
            assert calls.calls == []  # no byte went through the websockets parser
            assert calls.protocol._cutting
        await reader.wait_for(3)
        assert [len(u) for u in reader.updates[:3]] == [len(small), len(medium), len(large)]
        assert reader.updates[:3] == [small, medium, large]


async def test_pings_between_messages_are_answered_and_the_messages_still_skip_the_parser(tmp_path: Path) -> None:
    name = "acme/cart/pings"
    messages = hello_and_updates(6)
    async with served_relay(tmp_path, "frames") as served, recording(served.url(name)) as reader:
        known = [await served.newest([])]  # the reader's
        async with raw_peer(served.url(name)) as peer:
            calls = ParserCalls(await served.newest(known))
            data = b""
            for i, message in enumerate(messages):
                data += masked(Opcode.BINARY, message) + masked(Opcode.PING, f"ping-{i}".encode())
            await peer.write(data, random_cuts(3))
            await peer.until(lambda got: sum(f.opcode is Opcode.PONG for f in got) == len(messages)
                             and peer.acks()[-1:] == [6])
            pongs = [bytes(f.data) for f in peer.received if f.opcode is Opcode.PONG]
            assert pongs == [f"ping-{i}".encode() for i in range(len(messages))]
            # Each ping went to the parser whole, alone: never a message, never a piece of a frame.
            assert calls.calls == [len(masked(Opcode.PING, f"ping-{i}".encode())) for i in range(len(messages))]
        await reader.wait_for(6)
        assert op_numbers(reader.updates) == list(range(6))


async def test_frames_sent_with_the_handshake_request_get_the_connection_dropped_as_before(tmp_path: Path) -> None:
    """A client that writes frames before the handshake's answer: uvicorn drops it (the parser
    read into them during the handshake, so the relay never cuts frames on such a connection),
    and the next peer's messages are read on the relay's own path."""
    name = "acme/cart/pipelined"
    messages = hello_and_updates(5)
    data = b"".join(masked(Opcode.BINARY, m) for m in messages)
    head, tail = data[:len(data) // 2 + 3], data[len(data) // 2 + 3:]  # the request's write ends mid-frame
    async with served_relay(tmp_path, "frames") as served, recording(served.url(name)) as reader:
        known = [await served.newest([])]  # the reader's
        async with raw_peer(served.url(name), first=head) as hasty:
            with pytest.raises((anyio.BrokenResourceError, anyio.ClosedResourceError)):
                for _ in range(50):
                    await hasty.write(tail)
                    await anyio.sleep(0.02)
            assert hasty.acks() == []
        async with raw_peer(served.url(name)) as peer:
            calls = ParserCalls(await served.newest(known))
            await peer.write(data, random_cuts(4))
            await peer.until(lambda _: peer.acks()[-1:] == [5])
            assert calls.protocol._cutting and calls.calls == []
        await reader.wait_for(5)
        assert op_numbers(reader.updates) == list(range(5))


async def test_a_fragmented_message_goes_to_the_parser_and_so_does_everything_after_it(tmp_path: Path) -> None:
    name = "acme/cart/fragments"
    first, second, third = hello_and_updates(2)
    async with served_relay(tmp_path, "frames") as served, recording(served.url(name)) as reader:
        known = [await served.newest([])]  # the reader's
        async with raw_peer(served.url(name)) as peer:
            calls = ParserCalls(await served.newest(known))
            await peer.write(masked(Opcode.BINARY, first))
            split = len(second) // 2
            fragmented = masked(Opcode.BINARY, second[:split], fin=False) + masked(Opcode.CONT, second[split:])
            after = masked(Opcode.BINARY, third)
            await peer.write(fragmented + after, one_byte_each)
            await peer.until(lambda _: peer.acks()[-1:] == [2])
            assert not calls.protocol._cutting
            assert sum(calls.calls) == len(fragmented) + len(after)
        await reader.wait_for(2)
        assert op_numbers(reader.updates) == [0, 1]


@pytest.mark.parametrize(("frame", "code"), [
    (masked(Opcode.BINARY, protocol.sync_update(b"\x00\x00"), mask=False), CloseCode.PROTOCOL_ERROR),
    (bytes([0xC2]) + masked(Opcode.BINARY, b"\x00\x00\x00")[1:], CloseCode.PROTOCOL_ERROR),
    (masked(Opcode.CONT, b"stray"), CloseCode.PROTOCOL_ERROR),
    (masked(Opcode.TEXT, b"text"), closecodes.INVALID_MESSAGE),
], ids=["unmasked", "reserved-bit", "stray-continuation", "text"])
async def test_a_frame_the_relay_does_not_read_itself_is_refused_as_before(
        tmp_path: Path, frame: bytes, code: int) -> None:
    """After messages read on the relay's own path, a bad frame still gets the parser's (or the
    relay's) close code."""
    name = "acme/cart/refused"
    hello, update = hello_and_updates(1)
    async with served_relay(tmp_path, "frames") as served, raw_peer(served.url(name)) as peer:
        await peer.write(masked(Opcode.BINARY, hello) + masked(Opcode.BINARY, update) + frame, random_cuts(5))
        await peer.until(lambda got: any(f.opcode is Opcode.CLOSE for f in got))
        close = Close.parse(next(bytes(f.data) for f in peer.received if f.opcode is Opcode.CLOSE))
        assert close.code == code


async def test_a_frame_over_the_size_limit_is_refused_before_it_is_held(tmp_path: Path) -> None:
    """The header of a frame longer than the relay's limit is enough: 1009, with the payload
    never sent (nothing is held waiting for it)."""
    name = "acme/cart/too-big"
    async with served_relay(tmp_path, "frames", max_message_bytes=1024) as served, raw_peer(served.url(name)) as peer:
        header = bytes([0x82, 0xFF]) + (1 << 40).to_bytes(8, "big") + b"mask"
        await peer.write(header)
        await peer.until(lambda got: any(f.opcode is Opcode.CLOSE for f in got))
        close = Close.parse(next(bytes(f.data) for f in peer.received if f.opcode is Opcode.CLOSE))
        assert close.code == CloseCode.MESSAGE_TOO_BIG


async def test_the_peer_s_close_is_answered_and_nothing_after_it_is_read(tmp_path: Path) -> None:
    name = "acme/cart/peer-closes"
    hello, update, late = hello_and_updates(2)
    async with served_relay(tmp_path, "frames") as served, recording(served.url(name)) as reader:
        async with raw_peer(served.url(name)) as peer:
            await peer.write(masked(Opcode.BINARY, hello) + masked(Opcode.BINARY, update))
            await peer.until(lambda _: peer.acks() == [1])
            await peer.write(masked(Opcode.CLOSE, Close(1000, "bye").serialize()) + masked(Opcode.BINARY, late))
            await peer.until(lambda got: any(f.opcode is Opcode.CLOSE for f in got))
            close = Close.parse(next(bytes(f.data) for f in peer.received if f.opcode is Opcode.CLOSE))
            assert close.code == 1000
        await reader.wait_for(1)
        await anyio.sleep(0.2)
        assert op_numbers(reader.updates) == [0]  # the update after the close was never read
