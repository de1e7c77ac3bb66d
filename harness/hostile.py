"""Helpers for hostile-input tests: refused connections, bystanders that must keep syncing.

``closed_with`` opens a raw WebSocket, sends what it is given and returns the close
code the relay answered with; ``non_reading_peer`` connects and never reads, and
``close_code_after_draining`` reads what was queued for it until the relay closes it. ``Bystanders`` keeps one peer in the offender's room
and one in another room; ``check()`` then proves the relay contained the fault: both
still get an edit stored and acknowledged, the store holds exactly those two new
rows, no room was opened or dropped, and the relay process is alive with a clean log.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from pycrdt import Array, Doc
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from harness.prometheus_text import by_label, value
from harness.relay_process import RelayProcess
from harness.ypeer import YPeer, ypeer

CLOSE_TIMEOUT = 5.0



async def closed_with(
    url: str,
    *frames: bytes | str,
    additional_headers: dict[str, str] | None = None,
    timeout: float = CLOSE_TIMEOUT,
) -> int | None:
    """Connect, send ``frames`` in order, read until the relay closes; return its close code.

    A relay that closes without a close frame gives 1006; one that never closes fails the test.
    """
    async with connect(url, max_size=None, additional_headers=additional_headers) as ws:
        try:
            for frame in frames:
                await ws.send(frame)
        except ConnectionClosed:
            return ws.close_code
        return await close_code_after_draining(ws, timeout)


@asynccontextmanager
async def non_reading_peer(url: str) -> AsyncIterator[ClientConnection]:
    """A peer that stops reading at once: tiny receive buffer, no compression, a one-frame queue."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(url.split(":")[2].split("/")[0])))
    async with connect(url, sock=sock, max_queue=1, max_size=None, compression=None) as ws:
        yield ws


async def close_code_after_draining(ws: ClientConnection, timeout: float = 10.0) -> int | None:
    """Read everything queued for ``ws`` until the relay closes it, and return its close code;
    raises ``TimeoutError`` if the relay has not closed it within ``timeout`` seconds."""
    try:
        with anyio.fail_after(timeout):
            async for _ in ws:
                pass
    except ConnectionClosed:
        pass
    return ws.close_code


def http_get(relay: RelayProcess, path: str) -> tuple[int, str]:
    """A plain GET on the relay (urllib: no per-call TLS set-up as an httpx client has)."""
    try:
        with urllib.request.urlopen(f"{relay.http_url}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


def metrics_text(relay: RelayProcess) -> str:
    status, text = http_get(relay, "/metrics")
    assert status == 200, text
    return text


def rejected(relay: RelayProcess) -> Counter[str]:
    """``syncline_rejected_total`` by reason."""
    found = by_label(metrics_text(relay), "syncline_rejected_total", "reason")
    return Counter({reason: int(count) for reason, count in found.items()})


def gauge(relay: RelayProcess, name: str) -> float:
    return value(metrics_text(relay), name)


def open_rooms(relay: RelayProcess) -> int:
    status, text = http_get(relay, "/readyz")
    assert status == 200, text
    return int(json.loads(text)["rooms"])


async def wait_for(probe: Any, expected: Any, timeout: float = 5.0) -> None:
    """Poll ``probe()`` until it returns ``expected``."""
    value = None
    with anyio.move_on_after(timeout):
        while (value := probe()) != expected:
            await anyio.sleep(0.02)
        return
    raise AssertionError(f"still {value!r}, expected {expected!r} after {timeout}s")


def assert_alive(relay: RelayProcess) -> None:
    assert relay.process is not None and relay.process.poll() is None, f"relay died:\n{relay.log()[-4000:]}"
    log = relay.log()
    for sign in ("Traceback", "Exception in ASGI application", "CRITICAL"):
        assert sign not in log, f"relay logged {sign!r}:\n{log[-4000:]}"
    assert http_get(relay, "/healthz")[0] == 200


def append_op(item: dict[str, Any]) -> Any:
    """An edit for ``YPeer.edit``: append ``item`` to the ``ops`` array."""
    return lambda doc: doc.get("ops", type=Array).append(item)


def _ops(doc: Doc) -> list[Any]:
    return doc.get("ops", type=Array).to_py() or []


@dataclass
class Bystanders:
    """Peers next to an offender; ``check()`` asserts the offence changed nothing for them."""

    relay: RelayProcess
    room: str
    other_room: str
    same: YPeer | None
    other: YPeer
    rows_before: Counter[tuple[str, bytes]] = field(default_factory=Counter)
    rooms_before: int = 0
    same_state: bytes = b""
    other_state: bytes = b""

    async def check(self, *, also_stored: list[tuple[str, bytes]] | None = None) -> None:
        """Both bystanders edit and are acknowledged; the store gained exactly those edits.

        ``also_stored`` lists legitimate rows written during the test by someone else
        (a flooding peer, say) that are expected in the store as well.
        """
        assert_alive(self.relay)
        assert open_rooms(self.relay) == self.rooms_before, "the offence opened or dropped a room"
        written: list[tuple[str, bytes]] = []
        pairs = ((self.room, self.same, self.same_state), (self.other_room, self.other, self.other_state))
        for name, peer, state in pairs:
            if peer is None:
                continue
            assert peer.close_code is None, f"bystander in {name} was closed with {peer.close_code}"
            assert peer.doc.get_state() == state, f"bystander in {name} received something from the offender"
            acked = peer.acked
            update = await peer.edit(append_op({"bystander": name}))
            await peer.wait_acked(acked + 1)
            written.append((name, update))
        if self.same is not None:
            async with ypeer(self.relay.url_for(self.room)) as late:  # the room still serves its state
                assert {"bystander": self.room} in _ops(late.doc)
        rows_after = Counter(self.relay.stored_rows())
        expected = self.rows_before + Counter(written) + Counter(also_stored or [])
        assert rows_after == expected, (
            f"store changed beyond the bystanders' writes: gained {rows_after - expected}, "
            f"lost {expected - rows_after}"
        )
        assert_alive(self.relay)


@asynccontextmanager
async def bystanders(
    relay: RelayProcess, room: str, *, other_room: str | None = None, same_room: bool = True
) -> AsyncIterator[Bystanders]:
    """Connect a peer in ``room`` (unless ``same_room`` is False) and one in ``other_room``."""
    tenant, kind, doc_id = room.split("/")
    other_room = other_room or f"{tenant}/{'stock' if kind == 'cart' else 'cart'}/{doc_id}-neighbour"
    async with AsyncExitStack() as stack:
        same = await stack.enter_async_context(ypeer(relay.url_for(room), acks=True)) if same_room else None
        other = await stack.enter_async_context(ypeer(relay.url_for(other_room), acks=True))
        watch = Bystanders(relay, room, other_room, same, other)
        watch.rows_before = Counter(relay.stored_rows())
        watch.rooms_before = open_rooms(relay)
        watch.same_state = same.doc.get_state() if same is not None else b""
        watch.other_state = other.doc.get_state()
        yield watch
