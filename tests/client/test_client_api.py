"""The library surface: settings, names, subscriptions, conflicts, compaction, write batching."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from syncline.adapters.client import (
    Change,
    ClientClosed,
    ClientSettings,
    ClientSettingsError,
    DocumentKindMismatch,
    InvalidDocumentName,
    Status,
    SyncClient,
)
from syncline.engine import Conflict
from harness.relay_process import RelayProcess

from .support import base_url, client, redundant_rows, stored_cart, stored_ledger

pytestmark = pytest.mark.anyio

CART = "acme/cart/c-1"
STOCK = "acme/stock/loc-1"


@pytest.mark.parametrize(
    "options",
    [
        {"urls": ("http://127.0.0.1:1",)},
        {"urls": ("ws://127.0.0.1:1/v1/sync/acme/cart/c-1",)},
        {"urls": ("ws://127.0.0.1:1?token=x",)},
        {"connect_timeout": 0},
        {"ping_timeout": float("nan")},
        {"backoff_base": 2.0, "backoff_cap": 1.0},
        {"max_write_bytes": 0},
        {"max_inflight_writes": True},
        {"max_writes_per_second": -1.0},
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(tmp_path: Path, options: dict[str, object]) -> None:
    with pytest.raises(ClientSettingsError) as caught:
        ClientSettings(tmp_path, **options)  # type: ignore[arg-type]
    assert caught.value.name in options


def test_settings_never_show_the_token(tmp_path: Path) -> None:
    assert "secret-token" not in repr(ClientSettings(tmp_path, token="secret-token"))


async def test_names_and_kinds_are_checked(tmp_path: Path) -> None:
    async with SyncClient(data_dir=tmp_path) as c:
        with pytest.raises(InvalidDocumentName):
            await c.open("acme/cart")
        with pytest.raises(InvalidDocumentName):
            await c.open("acme/cart/../x")
        with pytest.raises(DocumentKindMismatch):
            await c.cart(STOCK)
        with pytest.raises(DocumentKindMismatch):
            await c.stock(CART)
        assert await c.open(CART) is await c.open(CART), "one replica per document per client"
    with pytest.raises(ClientClosed):
        await c.open(CART)


async def test_an_edit_after_the_client_closed_raises_instead_of_vanishing(tmp_path: Path) -> None:
    async with SyncClient(data_dir=tmp_path) as c:
        cart = await c.cart(CART)
    with pytest.raises(BaseExceptionGroup) as caught:
        cart.add_item("sku-1", 1)
    assert caught.group_contains(ClientClosed)


async def test_remote_changes_and_new_conflicts_reach_iterators_and_callbacks(
    relay: RelayProcess, tmp_path: Path
) -> None:
    url, token = base_url(relay), relay.token("acme")
    async with client(tmp_path / "a", url, token) as a, client(tmp_path / "b", url, token) as b:
        la, lb = await a.stock(STOCK), await b.stock(STOCK)
        ra, rb = a.replica(STOCK), b.replica(STOCK)
        await ra.wait_synced(10)
        await rb.wait_synced(10)
        la.record("restock-1", "sku-1", 1, reason="restock", actor="a")
        await rb.wait_until(lambda: lb.level("sku-1") == 1, 10)
        called: list[Conflict] = []
        ra.on_conflict(called.append)
        with ra.changes() as changes, ra.conflicts() as conflicts:
            lb.record("sale-b", "sku-1", -1, reason="sale", actor="b")  # both sell the last unit
            la.record("sale-a", "sku-1", -1, reason="sale", actor="a")
            with anyio.fail_after(10):
                change: Change = await changes.__anext__()
                conflict: Conflict = await conflicts.__anext__()
        assert change.origin == "relay" and change.doc == STOCK
        assert conflict.sku == "sku-1" and conflict.level == -1 and called == [conflict]
        await rb.wait_until(lambda: [c.id for c in lb.conflicts()] == [conflict.id], 10)
        await ra.wait_synced(10)
        await rb.wait_synced(10)
    assert stored_ledger(relay, STOCK).level("sku-1") == -1


async def test_a_slow_subscriber_is_told_how_many_notifications_it_missed(tmp_path: Path) -> None:
    async with SyncClient(data_dir=tmp_path) as a, SyncClient(data_dir=tmp_path) as b:
        cart = await a.cart(CART)
        replica = await b.open(CART)
        with replica.changes() as changes:
            for i in range(1100):  # more than the subscriber's buffer, none read meanwhile
                cart.add_item(f"sku-{i % 10}", 1)
            await replica.wait_until(lambda: replica.model.view().total_quantity == 1100, 10)  # type: ignore[union-attr]
            received: list[Change] = []
            with anyio.fail_after(5):
                async for change in changes:
                    received.append(change)
                    if sum(1 + c.missed for c in received) >= 1100:
                        break
        assert sum(1 + c.missed for c in received) == 1100, "every change read or counted as missed"
        assert len(received) == 1024 and received[-1].missed == 1100 - 1024


async def test_status_callbacks_see_every_transition_once(tmp_path: Path, relay: RelayProcess) -> None:
    seen: list[Status] = []
    async with client(tmp_path, base_url(relay), relay.token("acme")) as c:
        replica = await c.open(CART)
        replica.on_status(seen.append)
        await replica.wait_synced(10)
        assert c.status is Status.CONNECTED and c.pending == 0
    assert seen == [Status.CONNECTED, Status.DISCONNECTED]


async def test_the_local_log_is_compacted_and_reopens_to_the_same_state(tmp_path: Path) -> None:
    async with SyncClient(data_dir=tmp_path, compaction_rows=50) as c:
        cart = await c.cart(CART)
        for i in range(300):
            cart.add_item(f"sku-{i % 7}", 1)
            await anyio.sleep(0)
        replica = c.replica(CART)
        await replica.wait_until(lambda: replica.store.row_count(CART) < 150, 5)
        lines = cart.view().lines
        assert replica.pending == 300, "compaction never drops what the relay has not acknowledged"
    async with SyncClient(data_dir=tmp_path) as c:
        assert (await c.cart(CART)).view().lines == lines


async def test_a_burst_of_edits_goes_out_in_merged_writes_under_the_relays_rate_limit(
    relay: RelayProcess, tmp_path: Path
) -> None:
    async with client(tmp_path, base_url(relay), relay.token("acme"), max_writes_per_second=50.0) as c:
        cart = await c.cart(CART)
        replica = c.replica(CART)
        await replica.wait_synced(10)
        for i in range(600):  # 600 edits as fast as the loop turns: far above 50 writes per second
            cart.add_item(f"sku-{i % 10}", 1)
            await anyio.sleep(0)
        await replica.wait_synced(20)
        assert replica.status is Status.CONNECTED and replica.failed_rounds == 0
    rows = [row for row in relay.stored_rows() if row[0] == CART]
    assert len(rows) < 200, "rows that waited for the rate limit left merged"
    assert stored_cart(relay, CART).view().total_quantity == 600
    assert redundant_rows(relay, CART) == 0


async def test_a_raising_callback_is_logged_and_sync_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with SyncClient(data_dir=tmp_path) as a, SyncClient(data_dir=tmp_path) as b:
        cart = await a.cart(CART)
        replica = await b.open(CART)

        def broken(change: Change) -> None:
            raise RuntimeError("bug in the user interface")

        replica.on_change(broken)
        key = cart.add_item("sku-1", 1)
        cart.add_item("sku-1", 1)
        await replica.wait_until(lambda: replica.model.quantity(key) == 2, 5)  # type: ignore[union-attr]
    assert any("callback raised" in r.message and r.exc_info for r in caplog.records)
