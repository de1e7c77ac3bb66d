"""The link to a real relay: status, URL failover, dead connections, close codes, handshake economy."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest
from websockets.asyncio.server import ServerConnection, serve

from syncline.adapters.client import (
    AcksUnsupported,
    Forbidden,
    LocalStore,
    RelayRejected,
    Status,
    SyncTimeout,
    TokenExpired,
    Unauthorized,
    UpdateRefused,
)
from syncline.engine import closecodes, protocol
from harness.relay_process import RelayProcess
from harness.ypeer import ypeer

from .support import base_url, client, closed_port, redundant_rows, stored_cart

pytestmark = pytest.mark.anyio

CART = "acme/cart/c-1"


async def test_status_goes_connecting_connected_reconnecting_connected_disconnected(
    relay: RelayProcess, tmp_path: Path
) -> None:
    seen: list[Status] = []
    async with client(tmp_path / "a", base_url(relay), relay.token("acme")) as c:
        replica = await c.open(CART)
        replica.on_status(seen.append)
        assert replica.status is Status.CONNECTING
        await replica.wait_synced(10)
        assert replica.last_acked_at is not None
        await anyio.to_thread.run_sync(relay.kill)
        await replica.wait_until(lambda: replica.status is Status.RECONNECTING, 10)
        cart = await c.cart(CART)
        key = cart.add_item("sku-1", 3)
        assert cart.quantity(key) == 3 and replica.pending == 1, "offline edits apply at once and wait"
        await anyio.to_thread.run_sync(relay.start)
        await replica.wait_synced(15)
    assert seen == [Status.CONNECTED, Status.RECONNECTING, Status.CONNECTED, Status.DISCONNECTED]
    assert stored_cart(relay, CART).quantity(key) == 3


async def test_the_second_url_is_used_when_the_first_is_down(relay: RelayProcess, tmp_path: Path) -> None:
    urls = [f"ws://127.0.0.1:{closed_port()}", base_url(relay)]
    async with client(tmp_path / "a", urls, relay.token("acme")) as c:
        cart = await c.cart(CART)
        key = cart.add_item("sku-1", 1)
        await c.replica(CART).wait_synced(10)
    assert stored_cart(relay, CART).quantity(key) == 1


async def test_a_relay_that_accepts_but_never_answers_is_left_after_the_connect_timeout(
    relay_factory: Callable[..., RelayProcess], tmp_path: Path
) -> None:
    frozen, good = relay_factory(name="frozen"), relay_factory(name="good")
    assert frozen.process is not None
    os.kill(frozen.process.pid, signal.SIGSTOP)  # TCP still accepts; no WebSocket handshake ever
    try:
        async with client(tmp_path / "a", [base_url(frozen), base_url(good)], good.token("acme"),
                          connect_timeout=0.5) as c:
            cart = await c.cart(CART)
            key = cart.add_item("sku-1", 1)
            with anyio.fail_after(10):
                await c.replica(CART).wait_synced(10)
    finally:
        os.kill(frozen.process.pid, signal.SIGCONT)
    assert stored_cart(good, CART).quantity(key) == 1


async def test_a_dead_connection_is_detected_by_ping_timeout_and_replaced(
    relay: RelayProcess, tmp_path: Path
) -> None:
    assert relay.process is not None
    async with client(tmp_path / "a", base_url(relay), relay.token("acme"),
                      ping_interval=0.2, ping_timeout=0.3, connect_timeout=0.5) as c:
        cart = await c.cart(CART)
        replica = c.replica(CART)
        await replica.wait_synced(10)
        os.kill(relay.process.pid, signal.SIGSTOP)  # the socket stays open; nothing answers
        try:
            with anyio.fail_after(5):
                await replica.wait_until(lambda: replica.status is Status.RECONNECTING, 5)
            key = cart.add_item("sku-1", 2)
        finally:
            os.kill(relay.process.pid, signal.SIGCONT)
        await replica.wait_synced(15)
    assert stored_cart(relay, CART).quantity(key) == 2


@pytest.mark.parametrize(
    ("token_for", "error"),
    [
        (lambda r: "not-a-token", Unauthorized),
        (lambda r: r.token("other"), Forbidden),
        (lambda r: r.token("acme", read_only=True), Forbidden),
    ],
    ids=["forged", "other-tenant", "read-only"],
)
async def test_a_refused_document_stops_reconnecting_with_a_typed_error(
    relay: RelayProcess, tmp_path: Path, token_for: Callable[[RelayProcess], str], error: type[Exception]
) -> None:
    async with client(tmp_path / "a", base_url(relay), token_for(relay)) as c:
        cart = await c.cart(CART)
        cart.add_item("sku-1", 1)
        replica = c.replica(CART)
        with pytest.raises(error):
            await replica.wait_synced(10)
        assert replica.status is Status.DISCONNECTED and isinstance(replica.error, RelayRejected)
        assert replica.failed_rounds == 0
        assert replica.pending == 1, "a refused edit stays in the outbox"
    store = LocalStore(tmp_path / "a")
    state = store.sync_state(CART)
    store.close()
    assert state is not None and state.status == "disconnected" and state.error


class CloseWith:
    """A fake relay that accepts each WebSocket, reads the client's first frame, and closes it with ``code``."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.connections = 0

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        await ws.recv()
        await ws.close(self.code, "test")


async def _fake_relay(fake: CloseWith) -> AsyncIterator[str]:
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (closecodes.UNAUTHORIZED, Unauthorized),
        (closecodes.FORBIDDEN, Forbidden),
        (closecodes.INVALID_DOCUMENT_NAME, RelayRejected),
        (closecodes.READ_ONLY, Forbidden),
        (closecodes.INVALID_UPDATE, UpdateRefused),
        (closecodes.INVALID_MESSAGE, UpdateRefused),
        (closecodes.TOKEN_EXPIRED, TokenExpired),
    ],
)
async def test_close_codes_that_retrying_cannot_fix_end_the_attempts(
    tmp_path: Path, code: int, error: type[Exception]
) -> None:
    fake = CloseWith(code)
    async for url in _fake_relay(fake):
        async with client(tmp_path, url, "t") as c:
            replica = await c.open(CART)
            with pytest.raises(error) as caught:
                await replica.wait_synced(10)
            assert getattr(caught.value, "code", None) == code
            assert replica.status is Status.DISCONNECTED
    assert fake.connections == 1


@pytest.mark.parametrize(
    "code",
    [closecodes.GOING_AWAY, closecodes.INTERNAL_ERROR, closecodes.SLOW_CONSUMER, closecodes.RATE_LIMITED,
     closecodes.TOO_MANY_CONNECTIONS, closecodes.TOKEN_CONNECTIONS, closecodes.ROOM_LIMIT,
     closecodes.STORE_UNAVAILABLE, closecodes.FANOUT_UNAVAILABLE, closecodes.SERVER_FULL],
)
async def test_close_codes_that_may_pass_lead_to_reconnecting(tmp_path: Path, code: int) -> None:
    fake = CloseWith(code)
    async for url in _fake_relay(fake):
        async with client(tmp_path, url, "t", backoff_base=0.01, backoff_cap=0.02) as c:
            replica = await c.open(CART)
            await replica.wait_until(lambda: fake.connections >= 3, 10)
            assert replica.status in (Status.CONNECTING, Status.RECONNECTING) and replica.error is None
            with pytest.raises(SyncTimeout):
                await replica.wait_synced(0.05)


async def test_reconnecting_with_nothing_new_stores_nothing(relay: RelayProcess, tmp_path: Path) -> None:
    for _ in range(3):
        async with client(tmp_path / "a", base_url(relay), relay.token("acme")) as c:
            cart = await c.cart(CART)
            if not cart.lines():
                cart.add_item("sku-1", 1)
                cart.add_item("sku-2", 1)
                cart.remove_line(cart.lines()[0].key)  # a deletion: Yjs diffs always carry deletions
            await c.replica(CART).wait_synced(10)
    assert len([row for row in relay.stored_rows() if row[0] == CART]) <= 3
    assert redundant_rows(relay, CART) == 0


async def test_outbox_rows_the_relay_already_holds_are_dropped_not_resent(
    relay: RelayProcess, tmp_path: Path
) -> None:
    # An edit whose ack was lost: in the outbox here, already stored by the relay.
    async with client(tmp_path / "a", [], None) as c:  # offline
        cart = await c.cart(CART)
        key = cart.add_item("sku-1", 4)
        update = c.replica(CART).store.outbox(CART)[0].update
    async with ypeer(relay.url_for(CART), acks=True) as peer:
        await peer.send_update(update)
        await peer.wait_acked(2)
    rows_before = len(relay.stored_rows())
    async with client(tmp_path / "a", base_url(relay), relay.token("acme")) as c:
        replica = await c.open(CART)
        await replica.wait_synced(10)
        assert replica.pending == 0
    assert len(relay.stored_rows()) == rows_before, "nothing was sent again"
    assert stored_cart(relay, CART).quantity(key) == 4


class Misbehaving:
    """A fake relay that answers each connection in one wrong way."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.connections = 0

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        if self.behaviour == "garbage":
            await ws.send(b"\xff\xff\xff")  # not a y-websocket frame
        elif self.behaviour == "no-acks":
            await ws.send(protocol.extension({"op": "welcome", "version": 1, "acks": False, "writes": 0}))
        # "silent": accept, answer pings (the library does), never start the sync handshake
        with anyio.move_on_after(10):
            async for _ in ws:
                pass


async def test_a_relay_sending_garbage_is_left_and_retried(tmp_path: Path) -> None:
    fake = Misbehaving("garbage")
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}"
        async with client(tmp_path, url, "t", backoff_base=0.01, backoff_cap=0.02) as c:
            replica = await c.open(CART)
            await replica.wait_until(lambda: fake.connections >= 3, 10)
            assert replica.error is None and replica.status is not Status.CONNECTED


async def test_a_relay_that_never_starts_the_handshake_counts_as_down(tmp_path: Path) -> None:
    fake = Misbehaving("silent")
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}"
        async with client(tmp_path, url, "t", connect_timeout=0.2, backoff_base=0.01, backoff_cap=0.02) as c:
            replica = await c.open(CART)
            await replica.wait_until(lambda: fake.connections >= 2 and replica.failed_rounds >= 1, 10)
            assert replica.status is Status.RECONNECTING


async def test_a_relay_without_durable_acks_is_refused_with_a_typed_error(tmp_path: Path) -> None:
    fake = Misbehaving("no-acks")
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}"
        async with client(tmp_path, url, "t") as c:
            replica = await c.open(CART)
            with pytest.raises(AcksUnsupported):
                await replica.wait_synced(10)
            assert replica.status is Status.DISCONNECTED and fake.connections == 1
