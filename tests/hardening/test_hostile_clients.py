"""Slow and hostile clients: the relay keeps serving others and frees what the attackers held.

- Requests that never arrive (slowloris on the HTTP request or the WebSocket upgrade,
  a trickled REST body): dropped after ``--request-timeout-seconds`` (server/deadlines.py).
- A client stuck mid-frame, or one that never reads at all: dropped by the keepalive
  ping after ``--ws-ping-seconds``, or as a slow consumer (4408) once its queue fills.
- A reconnect storm of 1,000 clients (clean closes, aborts, half-open upgrades).
- A flood of thousands of room names: ``--max-rooms`` holds, idle rooms are evicted.

Throughout, a bystander in a room of its own edits and observes every 50 ms, and its
latency must stay low; afterwards the connections and rooms gauges return to what
the bystander holds and the relay's memory is back near its baseline.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Callable

import anyio
import pytest
from pycrdt import Array
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from syncline.engine import closecodes
from harness.hostile import assert_alive, closed_with, gauge, open_rooms, rejected, wait_for
from harness.relay_process import RelayProcess
from harness.ypeer import ypeer

from harness.probes import MIB, Bystander, rss_bytes

pytestmark = pytest.mark.anyio

RelayFactory = Callable[..., RelayProcess]
BYSTANDER_ROOM = "calm/stock/bystander"


def _connections(relay: RelayProcess) -> float:
    return gauge(relay, "syncline_connections")


def _rooms(relay: RelayProcess) -> float:
    return gauge(relay, "syncline_rooms")


def _open_fds(relay: RelayProcess) -> int:
    assert relay.process is not None
    return len(os.listdir(f"/proc/{relay.process.pid}/fd"))


def _upgrade_request(relay: RelayProcess, name: str) -> bytes:
    return (
        f"GET /v1/sync/{name}?token={relay.token(name.split('/')[0])} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def _raw_socket(relay: RelayProcess, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", relay.port))
    return sock


def _read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float | None]:
    """Read what the relay sends until it closes the connection; return it and when it closed."""
    sock.settimeout(0.05)
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received, time.monotonic()
        if not chunk:
            return received, time.monotonic()
        received += chunk
    return received, None


def _close_code(stream: bytes) -> int | None:
    """The code of the close frame in a server's byte stream (after its 101 response), if any."""
    _, _, data = stream.partition(b"\r\n\r\n")
    pos = 0
    while pos + 2 <= len(data):
        opcode, length = data[pos] & 0x0F, data[pos + 1] & 0x7F
        pos += 2
        if length == 126:
            length, pos = int.from_bytes(data[pos:pos + 2], "big"), pos + 2
        elif length == 127:
            length, pos = int.from_bytes(data[pos:pos + 8], "big"), pos + 8
        if opcode == 0x8:
            return int.from_bytes(data[pos:pos + 2], "big") if length >= 2 else 1005
        pos += length
    return None


# -- requests that never arrive ------------------------------------------------------------------------

REQUEST_TIMEOUT = 1.0


def _slowloris(relay: RelayProcess, kind: str) -> tuple[bytes, float | None, float]:
    """Open a connection, misbehave as ``kind``; return what the relay sent, when it closed, when we began."""
    sock = _raw_socket(relay)
    started = time.monotonic()
    with sock:
        if kind == "trickled upgrade":  # keeps sending, one byte every 100 ms: still never a whole request
            request = _upgrade_request(relay, "acme/cart/slow")
            sock.settimeout(0.1)
            answer = b""
            for byte in request[:-4]:
                try:
                    sock.sendall(bytes([byte]))
                    chunk = sock.recv(4096)
                except TimeoutError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    return answer, time.monotonic(), started
                if not chunk:
                    return answer, time.monotonic(), started
                answer += chunk
                if time.monotonic() - started > 6:
                    break
        elif kind == "partial request line":
            sock.sendall(b"GET /v1/tenants/acme/carts/c")
        elif kind == "headers without the blank line":
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        elif kind == "a second keep-alive request, cut short":
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /healthz HTTP/1.1\r\nHo")
        elif kind == "a REST body that never ends":
            token = relay.token("acme")
            sock.sendall(
                b"POST /v1/tenants/acme/carts/slow/items HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 200\r\nAuthorization: Bearer "
                + token.encode() + b"\r\n\r\n{\"product\":"
            )
        received, closed = _read_until_closed(sock, 8)
    return received, closed, started


SLOWLORIS = ["nothing at all", "partial request line", "headers without the blank line",
             "a second keep-alive request, cut short", "trickled upgrade", "a REST body that never ends"]


async def test_requests_that_never_arrive_are_dropped_after_the_request_timeout(relay_factory: RelayFactory) -> None:
    relay = relay_factory("--request-timeout-seconds", str(REQUEST_TIMEOUT), "--ws-ping-seconds", "1")
    with Bystander(relay, BYSTANDER_ROOM) as bystander:
        fds = _open_fds(relay)
        rows = relay.stored_rows()
        results: dict[str, tuple[bytes, float | None, float]] = {}
        crowd: list[tuple[bytes, float | None, float]] = []

        async def attack(kind: str) -> None:
            results[kind] = await anyio.to_thread.run_sync(_slowloris, relay, kind)

        async def crowd_member() -> None:
            crowd.append(await anyio.to_thread.run_sync(_slowloris, relay, "nothing at all"))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for kind in SLOWLORIS:
                    tg.start_soon(attack, kind)
                for _ in range(30):  # and a crowd of idle sockets
                    tg.start_soon(crowd_member)
        for kind, (received, closed, started) in [*results.items(), *[("crowd", c) for c in crowd]]:
            assert closed is not None, f"{kind}: still open after 8 s"
            assert REQUEST_TIMEOUT * 0.8 <= closed - started < REQUEST_TIMEOUT + 2.5, (kind, closed - started)
            if kind != "a REST body that never ends":  # the app had not seen those requests: a 408
                assert b"HTTP/1.1 408 Request Timeout" in received, (kind, received[:200])
        assert b"HTTP/1.1 200 OK" in results["a second keep-alive request, cut short"][0]
        assert relay.stored_rows()[: len(rows)] == rows
        assert {doc for doc, _ in relay.stored_rows()[len(rows):]} <= {BYSTANDER_ROOM}  # nothing of the attackers'
        await wait_for(lambda: _open_fds(relay) <= fds, True)  # every attacker's socket is closed
    bystander.check()
    assert_alive(relay)


# -- clients that stall mid-frame or never read -----------------------------------------------------------


@pytest.mark.slow
async def test_a_client_stuck_mid_frame_is_dropped_by_the_keepalive(relay_factory: RelayFactory) -> None:
    relay = relay_factory("--ws-ping-seconds", "1")

    def stuck() -> tuple[bytes, float | None, float]:
        with _raw_socket(relay) as sock:
            sock.sendall(_upgrade_request(relay, "acme/cart/stuck"))
            sock.sendall(b"\x82\xfe\x10\x00" + b"mask" + b"\x00" * 10)  # a 4 KiB binary frame, 10 bytes of it
            started = time.monotonic()
            received, closed = _read_until_closed(sock, 8)
            return received, closed, started

    with Bystander(relay, BYSTANDER_ROOM) as bystander:
        received, closed, started = await anyio.to_thread.run_sync(stuck)
        assert closed is not None, "a client stuck mid-frame was never dropped"
        assert closed - started < 1 + 1 + 2  # ping after 1 s, unanswered for 1 s, some slack
        assert _close_code(received) == 1011  # uvicorn: "keepalive ping timeout"
        await wait_for(lambda: _connections(relay), 2.0)  # only the bystander's peers remain
    bystander.check()
    assert_alive(relay)


@pytest.mark.slow
async def test_a_client_that_never_reads_is_dropped_and_all_it_held_is_freed(relay_factory: RelayFactory) -> None:
    relay = relay_factory("--send-queue-messages", "16", "--ws-ping-seconds", "1")
    room = "acme/cart/flooded"
    with Bystander(relay, BYSTANDER_ROOM) as bystander:
        async with ypeer(relay.url_for(room), acks=True) as writer, ypeer(relay.url_for(room)) as reader:
            fds = _open_fds(relay)
            baseline = peak = rss_bytes(relay)
            # An idle client that reads nothing (not even the handshake's answer): the keepalive drops it.
            idle = _raw_socket(relay, rcvbuf=4096)
            idle.sendall(_upgrade_request(relay, "acme/cart/idle"))
            # A client that reads nothing in a room where a writer streams 60 KB edits: a slow consumer.
            deaf = _raw_socket(relay, rcvbuf=4096)
            deaf.sendall(_upgrade_request(relay, room))
            with idle, deaf:
                await wait_for(lambda: _connections(relay), 6.0)
                written = 0
                with anyio.fail_after(30):
                    while rejected(relay)["slow_consumer"] == 0:
                        for _ in range(8):
                            await writer.edit(lambda d, n=written: d.get("ops", type=Array).append(
                                {"n": n, "pad": "x" * 60_000}))
                            written += 1
                        await writer.wait_acked(written + 1, timeout=10)
                        peak = max(peak, rss_bytes(relay))
                # The room's reading peer gets everything, in order; the writer was never slowed down to a stop.
                await reader.wait_until(lambda d: len(d.get("ops", type=Array)) == written, timeout=10)
                assert [op["n"] for op in reader.doc.get("ops", type=Array).to_py()] == list(range(written))
                assert writer.close_code is None and reader.close_code is None
                await wait_for(lambda: _connections(relay), 4.0)  # the bystander's two, the writer, the reader
                # Neither client ever reads, yet the relay lets go of their sockets and buffers within a bound
                # (asyncio alone would keep a socket whose peer never reads until its buffer drains: forever).
                await wait_for(lambda: _open_fds(relay) <= fds, True, timeout=15)
                for sock in (idle, deaf):
                    _, closed = await anyio.to_thread.run_sync(_read_until_closed, sock, 5.0)
                    assert closed is not None, "the relay still holds a connection it dropped"
        # Memory held for the deaf client is bounded by its queue (16 frames) and the socket buffers.
        assert peak - baseline < 48 * MIB, f"RSS grew by {(peak - baseline) / MIB:.1f} MiB"
    bystander.check()
    assert rejected(relay)["slow_consumer"] == 1
    await wait_for(lambda: _connections(relay), 0.0)
    assert_alive(relay)


# -- a reconnect storm ----------------------------------------------------------------------------------

STORM_CLIENTS = 1000
STORM_CONCURRENCY = 40


async def _storm(relay: RelayProcess, clients: int) -> dict[str, int]:
    """``clients`` connect and leave as fast as they can, four ways; return how each fared."""
    outcomes = {"synced": 0, "closed at once": 0, "aborted upgrade": 0, "bare TCP": 0, "refused": 0}
    limiter = anyio.Semaphore(STORM_CONCURRENCY)
    room_names = [f"storm/cart/r{i % 10}" for i in range(clients)]
    url = {name: relay.url_for(name) for name in set(room_names)}

    async def one(i: int) -> None:
        async with limiter:
            name, way = room_names[i], i % 4
            try:
                if way == 0:
                    async with ypeer(url[name]):
                        outcomes["synced"] += 1
                elif way == 1:
                    async with connect(url[name], open_timeout=10):
                        outcomes["closed at once"] += 1
                else:
                    stream = await anyio.connect_tcp("127.0.0.1", relay.port)
                    if way == 2:  # the upgrade request, then gone before the answer
                        await stream.send(_upgrade_request(relay, name))
                        outcomes["aborted upgrade"] += 1
                    else:
                        outcomes["bare TCP"] += 1
                    await stream.aclose()
            except (ConnectionClosed, InvalidStatus, OSError):
                outcomes["refused"] += 1

    with anyio.fail_after(90):
        async with anyio.create_task_group() as tg:
            for i in range(clients):
                tg.start_soon(one, i)
    return outcomes


async def test_a_reconnect_storm_of_1000_clients_leaves_nothing_behind(relay_factory: RelayFactory) -> None:
    relay = relay_factory("--max-connections-per-tenant", "100")
    fds = 0

    async def settled() -> int:
        """RSS once every stormer's connection and socket is gone."""
        await wait_for(lambda: _connections(relay), 0.0, timeout=15)
        if fds:
            await wait_for(lambda: _open_fds(relay) <= fds, True, timeout=15)
        return rss_bytes(relay)

    warm_up = await _storm(relay, STORM_CLIENTS)  # first rooms, first connections, allocator pools
    assert warm_up["refused"] == 0, warm_up
    baseline = await settled()
    fds = _open_fds(relay)  # the store's files and the listening socket, no client's
    with Bystander(relay, BYSTANDER_ROOM) as bystander:
        started = time.monotonic()
        storm = await _storm(relay, STORM_CLIENTS)
        elapsed = time.monotonic() - started
        assert storm["refused"] == 0, storm
        await wait_for(lambda: _connections(relay), 2.0, timeout=15)  # only the bystander's two peers
    bystander.check(max_latency=3.0)
    after = await settled()
    # Every slot of the tenant is free again: 100 at once are admitted, the 101st is refused.
    admitted: list[int] = []
    ready, release = anyio.Event(), anyio.Event()

    async def hold(i: int) -> None:
        async with ypeer(relay.url_for(f"storm/cart/r{i % 10}")):
            admitted.append(i)
            if len(admitted) == 100:
                ready.set()
            await release.wait()

    async with anyio.create_task_group() as tg:
        for i in range(100):
            tg.start_soon(hold, i)
        with anyio.fail_after(30):
            await ready.wait()
        assert await closed_with(relay.url_for("storm/cart/one-too-many")) == closecodes.TOO_MANY_CONNECTIONS
        release.set()
    await wait_for(lambda: _connections(relay), 0.0)
    print(f"\nstorm of {STORM_CLIENTS}: {storm} in {elapsed:.1f} s; RSS {baseline / MIB:.1f} -> {after / MIB:.1f} MiB; "
          f"bystander {bystander.summary()}")
    assert after - baseline < 4 * MIB, f"a storm of {STORM_CLIENTS} left {(after - baseline) / MIB:.1f} MiB behind"
    assert_alive(relay)


# -- a flood of room names --------------------------------------------------------------------------------

FLOOD_ROOMS = 1500
MAX_ROOMS = 40


@pytest.mark.slow
async def test_a_flood_of_room_names_respects_the_room_cap_and_is_evicted(relay_factory: RelayFactory) -> None:
    relay = relay_factory("--max-rooms", str(MAX_ROOMS), "--room-idle-seconds", "0.5",
                          "--max-connections-per-tenant", "100")
    baseline = rss_bytes(relay)
    peak_rooms = 0.0
    written: list[tuple[str, bytes]] = []
    with Bystander(relay, BYSTANDER_ROOM) as bystander:
        limiter = anyio.Semaphore(20)
        refused = 0

        async def visit(i: int) -> None:
            nonlocal refused
            name = f"flood/cart/room-{i}"
            async with limiter:
                try:
                    async with ypeer(relay.url_for(name), acks=i % 10 == 0) as peer:
                        if i % 10 == 0:  # every tenth room gets content, so eviction has something to compact
                            written.append((name, await peer.edit(
                                lambda d: d.get("ops", type=Array).append({"room": i}))))
                            await peer.wait_acked(2)
                except ConnectionClosed:
                    refused += 1

        async def watch_rooms(stop: anyio.Event) -> None:
            nonlocal peak_rooms
            while not stop.is_set():
                peak_rooms = max(peak_rooms, await anyio.to_thread.run_sync(_rooms, relay))
                await anyio.sleep(0.05)

        stop = anyio.Event()
        with anyio.fail_after(120):
            async with anyio.create_task_group() as watcher:
                watcher.start_soon(watch_rooms, stop)
                async with anyio.create_task_group() as tg:
                    for i in range(FLOOD_ROOMS):
                        tg.start_soon(visit, i)
                stop.set()
        peak_rss = rss_bytes(relay)
        assert refused == 0, f"{refused} visitors refused although idle rooms could make way"
        assert peak_rooms <= MAX_ROOMS
        await wait_for(lambda: _rooms(relay), 1.0, timeout=10)  # idle rooms evicted: only the bystander's
        assert open_rooms(relay) == 1
    bystander.check()
    # Everything written to the flooded rooms was stored (and compacted on eviction), and reads back.
    stored_docs = {doc for doc, _ in relay.stored_rows()}
    assert {name for name, _ in written} <= stored_docs
    async with ypeer(relay.url_for(written[-1][0])) as late:
        assert len(late.doc.get("ops", type=Array)) == 1
    print(f"\nroom flood of {FLOOD_ROOMS}: peak {peak_rooms:.0f} rooms open (cap {MAX_ROOMS}); "
          f"RSS {baseline / MIB:.1f} -> {peak_rss / MIB:.1f} MiB; bystander {bystander.summary()}")
    assert peak_rss - baseline < 16 * MIB, f"RSS grew by {(peak_rss - baseline) / MIB:.1f} MiB"
    assert_alive(relay)
