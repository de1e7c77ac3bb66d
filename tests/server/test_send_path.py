"""The send and receive paths: frames written to each peer's transport and messages read from
an inbox the protocol fills, or both through ASGI.

Under the relay's own WebSocket protocol a connection writes complete frames to its socket's
transport (``Connection.writes_frames``); under plain uvicorn (any server without the
``syncline.frames`` extension) it hands each frame to the server. Both keep one order per
connection, the same for every peer of a room; both bound what a peer that stops reading
holds, in bytes, and drop it with 4408; both end with the documented close code after every
frame written before it. On the receive side, every message a peer sends is handled once, in
order, including those sent before its connection joined its room. Every test runs a real uvicorn on 127.0.0.1 with real WebSocket
clients; the relay runs in this process so that the tests can see which path its
connections took.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from pycrdt import Array, Doc
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader
from websockets.uri import parse_uri

from syncline.engine import closecodes, encode_diff, protocol
from syncline.engine.protocol import Kind
from syncline.engine.tokens import issue_token
from syncline.server.endpoints import probe_routes, sync_routes
from syncline.server.frames import binary_frame, frame_header
from syncline.server.metrics import Metrics
from syncline.server.relay import Relay, open_relay
from syncline.server.settings import Settings

from harness.relay_process import SECRET
from harness.ypeer import ypeer

from .loopback import serving

pytestmark = pytest.mark.anyio

PATHS = ["frames", "asgi"]
"""``frames``: the relay's own protocol (serve.py's); ``asgi``: uvicorn's stock websockets-sansio."""


@dataclass
class Served:
    relay: Relay
    base: str

    def url(self, name: str) -> str:
        return f"{self.base}/v1/sync/{name}?token={issue_token(SECRET, name.split('/')[0], [name])}"

    def connections(self) -> list[Any]:
        return list(self.relay.connections)

    async def newest(self, known: list[Any]) -> Any:
        """The one connection that is not in ``known`` (waiting for the relay to register it)."""
        with anyio.fail_after(5):
            while True:
                new = [c for c in self.connections() if c not in known]
                if new:
                    assert len(new) == 1
                    return new[0]
                await anyio.sleep(0.005)


@asynccontextmanager
async def served_relay(tmp_path: Path, path: str, **settings: Any) -> AsyncIterator[Served]:
    """A relay with its sync routes on uvicorn on a loopback port, on the send ``path`` asked for."""
    config_settings = Settings(data_dir=tmp_path / "relay", secret=SECRET, port=0)
    config_settings = replace(config_settings, **settings)
    metrics = Metrics()
    app = Starlette(routes=[*sync_routes(), *probe_routes(metrics)])

    def wire(relay: Relay) -> None:
        app.state.relay = relay

    # The asgi path: no syncline.frames extension, so every frame goes through ASGI sends.
    async with open_relay(config_settings, metrics, setup=wire) as relay, \
            serving(app, config_settings, ws="websockets-sansio" if path == "asgi" else None) as base:
        yield Served(relay, base)


@dataclass
class Recorder:
    """A raw client that records every update frame the relay sends it and answers nothing."""

    ws: ClientConnection
    updates: list[bytes] = field(default_factory=list)
    changed: anyio.Event = field(default_factory=anyio.Event)
    close_code: int | None = None

    async def run(self, delay: float = 0.0) -> None:
        try:
            async for frame in self.ws:
                assert isinstance(frame, bytes)
                message = protocol.decode(frame)
                if message.kind is Kind.UPDATE:
                    self.updates.append(message.payload)
                    self.changed.set()
                if delay:
                    await anyio.sleep(delay)
        except ConnectionClosed:
            pass
        self.close_code = self.ws.close_code
        self.changed.set()

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        with anyio.fail_after(timeout):
            while len(self.updates) < count and self.close_code is None:
                self.changed = anyio.Event()
                await self.changed.wait()
        assert len(self.updates) >= count, f"closed with {self.close_code} after {len(self.updates)} updates"


@asynccontextmanager
async def recording(url: str, *, delay: float = 0.0, sock: socket.socket | None = None) -> AsyncIterator[Recorder]:
    async with connect(url, max_size=None, compression=None, sock=sock) as ws:
        recorder = Recorder(ws)
        async with anyio.create_task_group() as tg:
            tg.start_soon(recorder.run, delay)
            yield recorder
            tg.cancel_scope.cancel()


def non_reading_socket(base: str) -> socket.socket:
    """A connected socket with a tiny receive buffer, for a client that will stop reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(base.rsplit(":", 1)[1])))
    return sock


def append(item: dict[str, Any]) -> Callable[[Doc], None]:
    return lambda doc: doc.get("ops", type=Array).append(item)


def edit(doc: Doc, change: Callable[[Doc], None]) -> bytes:
    """Apply ``change`` to ``doc`` and return the update it made."""
    before = doc.get_state()
    change(doc)
    return encode_diff(doc, before)


def ops(doc: Doc) -> list[Any]:
    return doc.get("ops", type=Array).to_py() or []


# -- frames ---------------------------------------------------------------------------------


def parse(data: bytes) -> Frame:
    """``data`` read by the websockets library's own frame parser, as a client reads it."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False, max_size=None)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 70_000, 1_048_577])
def test_a_frame_of_any_length_reads_back_whole_with_its_length_form(size: int) -> None:
    message = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frame = binary_frame(message)
    header = 2 if size < 126 else 4 if size < 65_536 else 10
    assert len(frame) == header + size
    assert frame[0] == 0x82  # FIN, binary; the second byte's mask bit is clear: servers never mask
    assert frame[1] == (size if size < 126 else 126 if size < 65_536 else 127)
    parsed = parse(frame)
    assert parsed.opcode is Opcode.BINARY and parsed.fin and parsed.data == message


def test_a_broadcast_is_encoded_once_and_another_message_of_equal_bytes_on_its_own() -> None:
    message = protocol.sync_update(b"\x01\x02\x03")
    first = binary_frame(message)
    assert binary_frame(message) is first  # the same message to the next peer: the same bytes
    twin = bytes(bytearray(message))
    assert twin is not message
    assert binary_frame(twin) == first and binary_frame(twin) is not first
    assert frame_header(3) + b"abc" == binary_frame(b"abc")


# -- the relay --------------------------------------------------------------------------------


async def test_the_relay_s_own_protocol_writes_frames_and_plain_uvicorn_sends_through_asgi(tmp_path: Path) -> None:
    for path, expected in (("frames", True), ("asgi", False)):
        async with served_relay(tmp_path / path, path) as served, ypeer(served.url("acme/cart/p"), acks=True) as a:
            async with ypeer(served.url("acme/cart/p")) as b:
                assert [c.writes_frames for c in served.connections()] == [expected, expected]
                await a.edit(append({"n": 1}))
                await a.wait_acked(2)
                await b.wait_until(lambda d: ops(d) == [{"n": 1.0}])


@pytest.mark.parametrize("path", PATHS)
async def test_every_peer_receives_concurrent_writes_in_one_order_each_writer_s_in_its_own(
    tmp_path: Path, path: str
) -> None:
    writers, edits = 4, 40
    name = "acme/cart/order"
    async with served_relay(tmp_path, path) as served, recording(served.url(name)) as fast, \
            recording(served.url(name), delay=0.002) as slow:
        sent: dict[int, list[bytes]] = {}

        async def write(w: int) -> None:
            async with ypeer(served.url(name), acks=True) as peer:
                sent[w] = []
                for i in range(edits):
                    # every fifth edit is large (a 16-bit length header), so some frames queue
                    pad = "x" * (70_000 if i % 5 == 4 else 10)
                    sent[w].append(await peer.edit(append({"w": w, "i": i, "pad": pad})))
                    if i % 8 == 7:
                        await anyio.sleep(0)  # let the other writers interleave
                await peer.wait_acked(edits + 1, timeout=20)

        async with anyio.create_task_group() as tg:
            for w in range(writers):
                tg.start_soon(write, w)
        total = writers * edits
        await fast.wait_for(total)
        await slow.wait_for(total, timeout=20)
        assert fast.updates == slow.updates  # one order, the room's, on every connection
        for w, updates in sent.items():
            assert [u for u in fast.updates if u in set(updates)] == updates  # each writer's in its order
        doc = Doc()
        for update in fast.updates:
            doc.apply_update(update)
        assert len(ops(doc)) == total


@pytest.mark.parametrize("path", PATHS)
async def test_a_peer_that_stops_reading_is_held_to_its_byte_budget_then_dropped_with_4408(
    tmp_path: Path, path: str
) -> None:
    name = "acme/cart/flood"
    budget = 400_000
    async with (
        served_relay(tmp_path, path, send_queue_bytes=budget, send_queue_messages=10_000) as served,
        connect(served.url(name), sock=non_reading_socket(served.base), max_queue=1, max_size=None,
                compression=None) as slow,
    ):
        slow_connection = await served.newest([])
        async with recording(served.url(name)) as reader, ypeer(served.url(name), acks=True) as flooder:
            high = flood = 0
            while slow_connection.close_code is None:
                assert flood < 300, "the peer that stopped reading was never dropped"
                await flooder.edit(append({"i": flood, "pad": "y" * 60_000}))
                flood += 1
                await flooder.wait_acked(flood + 1)
                high = max(high, slow_connection.queued_bytes)
                assert slow_connection.queued_bytes <= budget
            assert slow_connection.close_code == closecodes.SLOW_CONSUMER
            assert high > 0  # it was queued (held back), not written into an unbounded buffer
            await reader.wait_for(flood)  # the peer that reads got everything, in order
            assert op_numbers(reader.updates) == list(range(flood))
            assert flooder.close_code is None and reader.close_code is None
        with anyio.fail_after(10):
            try:
                async for _ in slow:  # what was written before the close, then the close frame
                    pass
            except ConnectionClosed:
                pass
        assert slow.close_code == closecodes.SLOW_CONSUMER
        with anyio.fail_after(5):
            while served.connections():
                await anyio.sleep(0.01)


def op_numbers(updates: list[bytes]) -> list[int]:
    """The ``i`` of each update's op, applying them in the order given to one document: an update
    received before one it depends on would not integrate, and its op would be missing."""
    doc = Doc()
    numbers = []
    for update in updates:
        doc.apply_update(update)
        numbers.append(int(ops(doc)[-1]["i"]))
    return numbers


@pytest.mark.parametrize("path", PATHS)
async def test_a_peer_that_pauses_reading_gets_every_frame_in_order_once_it_reads_again(
    tmp_path: Path, path: str
) -> None:
    name = "acme/cart/pause"
    async with served_relay(tmp_path, path) as served:
        async with connect(served.url(name), sock=non_reading_socket(served.base), max_queue=1,
                           max_size=None, compression=None) as paused, \
                ypeer(served.url(name), acks=True) as writer:
            connection = next(c for c in served.connections() if not c.writes)
            count = 0
            while connection.queued_bytes == 0:  # until the socket pushed back and frames wait
                assert count < 200, "the socket never pushed back"
                await writer.edit(append({"i": count, "pad": "z" * 30_000}))
                count += 1
                await writer.wait_acked(count + 1)
            for _ in range(5):  # a few more while it waits
                await writer.edit(append({"i": count, "pad": "z"}))
                count += 1
            await writer.wait_acked(count + 1)
            received: list[bytes] = []
            with anyio.fail_after(10):
                async for frame in paused:  # reads again
                    assert isinstance(frame, bytes)
                    message = protocol.decode(frame)
                    if message.kind is Kind.UPDATE:
                        received.append(message.payload)
                        if len(received) == count:
                            break
            assert op_numbers(received) == list(range(count))
            assert connection.close_code is None and connection.queued_bytes == 0


@pytest.mark.parametrize("path", PATHS)
async def test_frames_written_before_a_close_arrive_before_its_code(tmp_path: Path, path: str) -> None:
    name = "acme/cart/close"
    async with served_relay(tmp_path, path) as served, recording(served.url(name)) as doomed, \
            ypeer(served.url(name), acks=True) as writer:
        for i in range(20):
            await writer.edit(append({"i": i, "pad": "w" * (100_000 if i == 10 else 10)}))
        await writer.wait_acked(21)
        await doomed.ws.send(b"\x07")  # an unknown message type: 4400, after what was sent before
        with anyio.fail_after(5):
            while doomed.close_code is None:
                doomed.changed = anyio.Event()
                await doomed.changed.wait()
        assert doomed.close_code == closecodes.INVALID_MESSAGE
        assert op_numbers(doomed.updates) == list(range(20))
        assert writer.close_code is None


@pytest.mark.parametrize("path", PATHS)
async def test_large_documents_and_updates_arrive_whole(tmp_path: Path, path: str) -> None:
    name = "acme/cart/large"
    sizes = [200, 70_000, 65_500, 300_000, 1_000_000]
    async with served_relay(tmp_path, path) as served:
        async with ypeer(served.url(name), acks=True) as writer, recording(served.url(name)) as reader:
            for i, size in enumerate(sizes):
                await writer.edit(append({"i": i, "pad": "L" * size}))
            await writer.wait_acked(len(sizes) + 1, timeout=20)
            await reader.wait_for(len(sizes))
            assert op_numbers(reader.updates) == list(range(len(sizes)))
        async with ypeer(served.url(name)) as late:  # its sync step 2: the whole document in one frame
            assert [len(op["pad"]) for op in ops(late.doc)] == sizes


async def test_a_late_joiner_on_the_frames_path_is_answered_before_the_updates_after_it(tmp_path: Path) -> None:
    name = "acme/cart/join"
    async with served_relay(tmp_path, "frames") as served, ypeer(served.url(name), acks=True) as writer:
        for i in range(10):
            await writer.edit(append({"i": i}))
        await writer.wait_acked(11)
        async with ypeer(served.url(name)) as late:
            for i in range(10, 15):
                await writer.edit(append({"i": i}))
            await late.wait_until(lambda d: len(ops(d)) == 15)
            assert [op["i"] for op in ops(late.doc)] == list(range(15))


def helper_tasks() -> dict[str, int]:
    """How many sender and retrier tasks of the relay's connections run in this loop."""
    names = [task.get_name() for task in asyncio.all_tasks()]
    return {kind: sum(name.endswith(f"Connection.{kind}") for name in names) for kind in ("_sender", "_retrier")}


async def helpers_become(expected: dict[str, int]) -> None:
    with anyio.fail_after(5):
        while helper_tasks() != expected:
            await anyio.sleep(0.005)


@pytest.mark.parametrize("path", PATHS)
async def test_idle_peers_hold_no_helper_task_and_a_held_write_has_a_retrier_until_it_lands(
    tmp_path: Path, path: str
) -> None:
    """A sender runs while frames are queued (each peer's sync step 2 answer, every frame on the
    ASGI path) and a retrier while a write is held; an idle peer keeps neither."""
    name = "acme/cart/idle"
    theirs, ours = Doc(), Doc()
    first = edit(theirs, append({"i": 0}))  # another writer's
    ours.apply_update(first)
    second = edit(ours, append({"i": 1}))  # placed after the first: it depends on it
    async with served_relay(tmp_path, path) as served, AsyncExitStack() as stack:
        peers = [await stack.enter_async_context(ypeer(served.url(name), acks=True)) for _ in range(5)]
        await helpers_become({"_sender": 0, "_retrier": 0})
        await peers[0].send_update(second)  # needs the other writer's clocks: held
        peers[0].doc.apply_update(second)  # (the relay does not echo a peer's own writes)
        await helpers_become({"_sender": 0, "_retrier": 1})
        await peers[1].send_update(first)  # the room advances; the retrier lands the held write
        peers[1].doc.apply_update(first)
        await peers[4].wait_until(lambda doc: len(ops(doc)) == 2)
        await peers[0].wait_acked(2)
        await helpers_become({"_sender": 0, "_retrier": 0})
        await peers[2].edit(append({"i": 2}))  # and the peers are served as before
        for peer in peers:
            await peer.wait_until(lambda doc: [op["i"] for op in ops(doc)] == [0, 1, 2])


@pytest.mark.parametrize("path", PATHS)
async def test_a_held_write_landed_by_the_same_peers_next_write_ends_its_retrier(
    tmp_path: Path, path: str
) -> None:
    """The peer sends an update ahead of the one it depends on, then that one: its own write
    lands both, and the retrier the first one started ends with nothing held."""
    name = "acme/cart/own"
    source = Doc()
    first = edit(source, append({"i": 0}))
    second = edit(source, append({"i": 1}))
    async with served_relay(tmp_path, path) as served, AsyncExitStack() as stack:
        writer, reader = [await stack.enter_async_context(ypeer(served.url(name), acks=True)) for _ in range(2)]
        await writer.send_update(second)  # ahead of its dependency: held
        await helpers_become({"_sender": 0, "_retrier": 1})
        await writer.send_update(first)  # lands, then the held one lands behind it
        await writer.wait_acked(2)
        await reader.wait_until(lambda doc: [op["i"] for op in ops(doc)] == [0, 1])
        await helpers_become({"_sender": 0, "_retrier": 0})


# -- the receive path ---------------------------------------------------------------------------


async def burst_once_open(url: str, messages: list[bytes]) -> AsyncIterator[protocol.Message]:
    """Open a WebSocket and, as soon as the handshake's answer is in, send ``messages`` in one
    write (the relay is still admitting the peer); then yield each message the relay sends."""
    client = ClientProtocol(parse_uri(url), max_size=None)
    client.send_request(client.connect())
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    async with await anyio.connect_tcp(host, int(port)) as stream:
        await stream.send(b"".join(client.data_to_send()))
        while client.state is State.CONNECTING:
            client.receive_data(await stream.receive())
        for message in messages:
            client.send_binary(message)
        await stream.send(b"".join(client.data_to_send()))
        while client.state is not State.CLOSED:
            for event in client.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.BINARY:
                    yield protocol.decode(bytes(event.data))
            client.receive_data(await stream.receive())


@pytest.mark.parametrize("path", PATHS)
async def test_a_burst_sent_at_once_is_handled_whole_and_in_order(tmp_path: Path, path: str) -> None:
    """hello, step 1 and 120 updates sent the moment the socket opens: they usually arrive while the
    relay is still admitting the peer (uvicorn queues them; the relay's protocol moves them into
    the inbox), and all arrive faster than their commits (the inbox fills, reading pauses, then
    resumes)."""
    name, count = "acme/cart/burst", 120
    source = Doc()
    updates = []
    for i in range(count):
        before = source.get_state()
        append({"i": i})(source)
        updates.append(encode_diff(source, before))
    burst = [protocol.extension({"op": "hello", "acks": True}), protocol.sync_step1(Doc().get_state())]
    burst += [protocol.sync_update(update) for update in updates]
    async with served_relay(tmp_path, path) as served, recording(served.url(name)) as reader:
        acked = 0
        with anyio.fail_after(20):
            async for message in burst_once_open(served.url(name), burst):
                if message.kind is Kind.EXTENSION:
                    body = protocol.decode_extension(message.payload)
                    if body["op"] == "ack":
                        assert body["n"] > acked
                        acked = body["n"]
                        if acked == count:
                            break
        await reader.wait_for(count)
        assert op_numbers(reader.updates) == list(range(count))


async def test_an_ack_written_just_before_a_close_arrives_before_it(tmp_path: Path) -> None:
    """A peer's update and a message that gets it closed arrive together: the relay acknowledges
    the update and closes with 4400 right after, and on the frames path the acknowledgement,
    written to the transport at the end of its turn, still comes first. (Through ASGI the ack
    is queued for the sender task, and the close drops the queue: the peer resends the update.)"""
    name = "acme/cart/ack-then-close"
    doc = Doc()
    doc.get("ops", type=Array).append("x")
    async with served_relay(tmp_path, "frames") as served, connect(served.url(name), compression=None) as ws:
        await ws.send(protocol.extension({"op": "hello", "acks": True}))
        await ws.send(protocol.sync_update(doc.get_update()))
        await ws.send(b"\x07")  # an unknown message type: 4400
        acks: list[int] = []
        with anyio.fail_after(5):
            try:
                async for frame in ws:
                    assert isinstance(frame, bytes)
                    message = protocol.decode(frame)
                    if message.kind is Kind.EXTENSION and protocol.decode_extension(message.payload)["op"] == "ack":
                        acks.append(protocol.decode_extension(message.payload)["n"])
            except ConnectionClosed:
                pass
        assert ws.close_code == closecodes.INVALID_MESSAGE
        assert acks == [1]
