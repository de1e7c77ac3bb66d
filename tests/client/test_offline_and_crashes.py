"""The issue's proofs with a real relay subprocess: offline convergence, and SIGKILL of a client or the relay."""

from __future__ import annotations

import queue
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from syncline.adapters.client import Status
from harness.relay_process import RelayProcess

from .support import Child, base_url, client, redundant_rows, stored_cart

pytestmark = pytest.mark.anyio

CART = "acme/cart/c-1"


async def test_two_clients_edit_one_cart_offline_and_converge_when_the_relay_returns(
    relay: RelayProcess, tmp_path: Path
) -> None:
    url, token = base_url(relay), relay.token("acme")
    relay.kill()
    async with client(tmp_path / "a", url, token) as a, client(tmp_path / "b", url, token) as b:
        ca, cb = await a.cart(CART), await b.cart(CART)
        ra, rb = a.replica(CART), b.replica(CART)
        for i in range(20):
            shared = ca.add_item("shared", 1)
            ca.add_item(f"a-{i}", i + 1)
        ca.set_quantity(shared, 5)  # replaces what A has seen of the line: its own 20 adds
        for i in range(30):
            cb.add_item("shared", 2)
            cb.add_item(f"b-{i}", 1, {"size": "M"})
        assert ca.quantity(shared) == 5 and cb.quantity(shared) == 60
        assert ra.pending == 41 and rb.pending == 60
        await ra.wait_until(lambda: ra.status is Status.RECONNECTING, 10)

        await anyio.to_thread.run_sync(relay.start)
        await ra.wait_synced(20)
        await rb.wait_synced(20)
        await ra.wait_until(lambda: ca.view().lines == cb.view().lines, 10)
        await rb.wait_until(lambda: ca.view().lines == cb.view().lines, 10)
        assert ca.quantity(shared) == 5 + 60, "B's concurrent adds survive A's set (add wins)"
        assert len(ca.lines()) == 1 + 20 + 30
        lines = ca.view().lines
    assert stored_cart(relay, CART).view().lines == lines, "the relay's store holds every edit"
    assert redundant_rows(relay, CART) == 0


async def test_a_client_killed_while_offline_delivers_its_edits_after_a_restart(
    relay: RelayProcess, tmp_path: Path
) -> None:
    url, token = base_url(relay), relay.token("acme")
    relay.kill()
    data = tmp_path / "till"
    child = Child("-m", "tests.client._client_child", str(data), url, token, CART, "edit", "100000")
    try:
        child.read_until("edited 150", 60)
    finally:
        child.kill()  # SIGKILL, somewhere in the middle of the edit stream
    while True:  # every line the child printed before it died
        try:
            line = child.lines.get(timeout=5)
        except queue.Empty:
            break
        if line is None:
            break
        child.seen.append(line)
    last = max(int(line.split()[1]) for line in child.seen if line.startswith("edited "))
    assert last >= 150

    await anyio.to_thread.run_sync(relay.start)
    async with client(data, url, token) as c:
        cart = await c.cart(CART)
        quantity = cart.lines()[0].quantity
        # Printed means the edit call had returned: it was on disk. One more may have been.
        assert last <= quantity <= last + 1
        assert c.pending == quantity, "one outbox row per edit, none lost"
        await c.replica(CART).wait_synced(20)
    assert stored_cart(relay, CART).lines()[0].quantity == quantity
    assert redundant_rows(relay, CART) == 0


async def test_relay_killed_mid_stream_loses_no_acknowledged_update_and_clients_resume_without_duplicates(
    relay_factory: Callable[..., RelayProcess], tmp_path: Path
) -> None:
    relay = relay_factory("--compaction-updates", "100000")  # keep every row: duplicates stay countable
    url, token = base_url(relay), relay.token("acme")
    edits = 300
    made = {"a": 0, "b": 0}
    acked: dict[str, int] = {}
    async with client(tmp_path / "a", url, token) as a, client(tmp_path / "b", url, token) as b:
        carts = {"a": await a.cart(CART), "b": await b.cart(CART)}
        replicas = {"a": a.replica(CART), "b": b.replica(CART)}
        for replica in replicas.values():
            await replica.wait_synced(10)

        async def stream(who: str) -> None:
            for i in range(edits):
                carts[who].add_item(f"sku-{who}", 1)
                made[who] += 1
                await anyio.sleep(0.002 if i % 4 else 0)  # bursts: several writes in flight

        async with anyio.create_task_group() as tg:
            tg.start_soon(stream, "a")
            tg.start_soon(stream, "b")
            await replicas["a"].wait_until(lambda: made["a"] >= 100, 20)
            await anyio.to_thread.run_sync(relay.kill)  # SIGKILL while both stream
            for who in ("a", "b"):  # one outbox row per edit: what left the outbox was acknowledged
                acked[who] = made[who] - replicas[who].pending
        assert 0 < acked["a"] < edits and 0 < acked["b"] < edits, "the kill landed mid-stream"
        # The dead relay's file, as it was left: every acknowledged edit is in it.
        at_kill = stored_cart(relay, CART)
        for who in ("a", "b"):
            assert sum(l.quantity for l in at_kill.lines() if l.product_id == f"sku-{who}") >= acked[who]

        await anyio.to_thread.run_sync(relay.start)
        for who in ("a", "b"):
            await replicas[who].wait_synced(20)
        for who in ("a", "b"):
            await replicas[who].wait_until(lambda: carts[who].view().lines == carts["a" if who == "b" else "b"].view().lines, 10)
            assert {l.product_id: l.quantity for l in carts[who].lines()} == {"sku-a": edits, "sku-b": edits}
    assert {l.product_id: l.quantity for l in stored_cart(relay, CART).lines()} == {"sku-a": edits, "sku-b": edits}
    assert redundant_rows(relay, CART) == 0, "no update was stored twice"
