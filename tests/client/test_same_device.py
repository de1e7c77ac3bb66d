"""Several clients on one data directory: each other's edits without the relay, each update sent once."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from syncline.adapters.client import Change, Status
from harness.relay_process import RelayProcess

from .support import Child, base_url, client, closed_port, redundant_rows, stored_cart

pytestmark = pytest.mark.anyio

CART = "acme/cart/c-1"


async def test_two_clients_on_one_data_directory_see_each_others_edits_with_the_relay_down(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{closed_port()}"
    async with client(tmp_path, url, "t") as a, client(tmp_path, url, "t") as b:
        ca, cb = await a.cart(CART), await b.cart(CART)
        ra, rb = a.replica(CART), b.replica(CART)
        with rb.changes() as changes:
            key = ca.add_item("sku-1", 2)
            await rb.wait_until(lambda: cb.quantity(key) == 2, 2)
            with anyio.fail_after(2):
                change: Change = await changes.__anext__()
            assert change.origin == "device" and change.doc == CART
        cb.add_item("sku-1", 3)
        cb.add_item("sku-2", 1)
        await ra.wait_until(lambda: ca.view().lines == cb.view().lines, 2)
        assert ca.quantity(key) == 5
        assert ra.pending == rb.pending == 3, "one outbox, shared"
        assert [ra.leader, rb.leader].count(True) == 1, "exactly one of them would talk to the relay"
        assert Status.CONNECTED not in (ra.status, rb.status)


async def test_one_data_directory_sends_each_update_once(relay: RelayProcess, tmp_path: Path) -> None:
    url, token = base_url(relay), relay.token("acme")
    async with client(tmp_path, url, token) as a, client(tmp_path, url, token) as b:
        ca, cb = await a.cart(CART), await b.cart(CART)
        ra, rb = a.replica(CART), b.replica(CART)
        for _ in range(50):
            ca.add_item("sku-a", 1)
            cb.add_item("sku-b", 1)
            await anyio.sleep(0.001)
        await ra.wait_synced(10)
        await rb.wait_synced(10)
        assert [ra.leader, rb.leader].count(True) == 1
        follower = rb if ra.leader else ra
        assert follower.last_acked_at is not None, "the follower sees the leader's acknowledgements"
    stored = {line.product_id: line.quantity for line in stored_cart(relay, CART).lines()}
    assert stored == {"sku-a": 50, "sku-b": 50}
    assert redundant_rows(relay, CART) == 0


async def test_a_follower_takes_over_when_the_leader_process_is_killed(relay: RelayProcess, tmp_path: Path) -> None:
    url, token = base_url(relay), relay.token("acme")
    leader = Child("-m", "tests.client._client_child", str(tmp_path), url, token, CART, "lead")
    try:
        leader.read_until("leading", 30)
        async with client(tmp_path, url, token) as c:
            cart = await c.cart(CART)
            replica = c.replica(CART)
            assert not replica.leader
            key = cart.add_item("sku-1", 1)
            await replica.wait_synced(10)  # delivered by the other process
            assert not replica.leader
            leader.kill()
            cart.add_item("sku-1", 1)
            await replica.wait_until(lambda: replica.leader, 5)
            await replica.wait_synced(10)
    finally:
        leader.kill()
    assert stored_cart(relay, CART).quantity(key) == 2
    assert redundant_rows(relay, CART) == 0


async def test_redundant_rows_counts_an_update_stored_twice(relay: RelayProcess, tmp_path: Path) -> None:
    """The duplicate check the tests above rely on can fail."""
    from harness.ypeer import ypeer

    async with client(tmp_path, [], None) as c:
        (await c.cart(CART)).add_item("sku-1", 1)
        update = c.replica(CART).store.outbox(CART)[0].update
    async with ypeer(relay.url_for(CART), acks=True) as peer:
        await peer.send_update(update)
        await peer.send_update(update)
        await peer.wait_acked(3)
    assert redundant_rows(relay, CART) == 1


async def test_edits_made_before_the_other_client_first_yields_are_not_missed(tmp_path: Path) -> None:
    """The change signal's baseline is taken before loading, not when the watcher first runs."""
    async with client(tmp_path, [], None) as a, client(tmp_path, [], None) as b:
        cart = await a.cart(CART)
        replica = await b.open(CART)
        key = cart.add_item("sku-1", 1)  # no await between b's open and this commit
        await replica.wait_until(lambda: replica.model.quantity(key) == 1, 2)  # type: ignore[union-attr]
