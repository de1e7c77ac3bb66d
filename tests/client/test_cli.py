"""`syncline client` as a real subprocess: offline edits are queued, later runs catch up, watch is live."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from harness.relay_process import RelayProcess
from syncline.engine import Order, OrderLine

from .support import REPO, Child, base_url, client, stored_cart, stored_doc, stored_ledger

CART = "acme/cart/c-1"
STOCK = "acme/stock/loc-1"


def _client_cli(relay: RelayProcess, data: Path, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncline.app.cli", "client", "--url", base_url(relay),
         "--token", token or relay.token("acme"), "--data-dir", str(data), "--connect-timeout", "2", *args],
        capture_output=True, text=True, timeout=60, cwd=REPO, env=dict(os.environ),
    )


@pytest.mark.slow
def test_the_cli_works_offline_and_catches_up_when_the_relay_returns(relay: RelayProcess, tmp_path: Path) -> None:
    data = tmp_path / "cli"
    relay.kill()
    added = _client_cli(relay, data, "cart", "acme/c-1", "add", "sku-1", "2", "--attr", "size=M")
    assert added.returncode == 0, added.stderr
    assert "queued, 1 pending" in added.stdout
    adjusted = _client_cli(relay, data, "stock", "acme/loc-1", "adjust", "sku-1", "-1", "--reason", "sale")
    assert adjusted.returncode == 0, adjusted.stderr
    assert "queued, 1 pending" in adjusted.stdout and "conflict negative_level:" in adjusted.stdout
    status = _client_cli(relay, data, "status")
    assert status.returncode == 0
    assert f"{CART}: 1 pending" in status.stdout and f"{STOCK}: 1 pending" in status.stdout
    shown = _client_cli(relay, data, "cart", "acme/c-1", "show")
    assert "sku-1" in shown.stdout and "size=M" in shown.stdout
    still_offline = _client_cli(relay, data, "sync")
    assert still_offline.returncode == 1 and "queued, 1 pending" in still_offline.stdout

    relay.start()
    synced = _client_cli(relay, data, "sync")
    assert synced.returncode == 0, synced.stderr
    assert f"{CART}: synced, 0 pending" in synced.stdout and f"{STOCK}: synced, 0 pending" in synced.stdout
    assert stored_cart(relay, CART).lines()[0].quantity == 2
    assert stored_ledger(relay, STOCK).level("sku-1") == -1
    status = _client_cli(relay, data, "status")
    assert f"{CART}: 0 pending" in status.stdout and "last ack never" not in status.stdout


@pytest.mark.anyio
async def test_an_order_placed_by_the_library_is_moved_and_shown_by_the_cli(relay: RelayProcess,
                                                                           tmp_path: Path) -> None:
    name = "acme/order/o-1"
    async with client(tmp_path / "lib", base_url(relay), relay.token("acme")) as till:
        order = await till.order(name)
        order.place(cart="c-1", location="loc-1", currency="EUR", by="till-1",
                    lines=[OrderLine("k", "sku-1", {}, 2, 500, 1000)])
        await till.wait_synced(10)
    data = tmp_path / "cli"
    staged = await anyio.to_thread.run_sync(lambda: _client_cli(relay, data, "order", "acme/o-1", "stage", "ready",
                                                                "--actor", "kitchen"))
    assert staged.returncode == 0, staged.stderr
    assert "stage ready, payment pending" in staged.stdout and "synced, 0 pending" in staged.stdout
    paid = await anyio.to_thread.run_sync(lambda: _client_cli(relay, data, "order", "acme/o-1", "pay", "paid"))
    assert "payment paid" in paid.stdout
    refused = await anyio.to_thread.run_sync(lambda: _client_cli(relay, data, "order", "acme/o-1", "stage", "placed"))
    assert refused.returncode != 0 and "refused" in refused.stderr
    shown = await anyio.to_thread.run_sync(lambda: _client_cli(relay, data, "order", "acme/o-1", "show"))
    assert "acme/order/o-1 (ready, payment paid): 1 lines, total 1000 EUR" in shown.stdout
    assert "stage placed -> ready by kitchen" in shown.stdout
    stored = Order(stored_doc(relay, name), "o-1").view()
    assert (stored.stage, stored.payment, stored.total) == ("ready", "paid", 1000)


def test_the_next_edit_delivers_what_earlier_runs_queued(relay: RelayProcess, tmp_path: Path) -> None:
    data = tmp_path / "cli"
    relay.kill()
    for _ in range(3):
        assert _client_cli(relay, data, "cart", "acme/c-1", "add", "sku-1").returncode == 0
    relay.start()
    done = _client_cli(relay, data, "cart", "acme/c-1", "set", "sku-1", "7")
    assert done.returncode == 0 and "synced, 0 pending" in done.stdout
    assert stored_cart(relay, CART).lines()[0].quantity == 7


def test_a_refused_token_exits_3_and_keeps_the_edit(relay: RelayProcess, tmp_path: Path) -> None:
    data = tmp_path / "cli"
    refused = _client_cli(relay, data, "cart", "acme/c-1", "add", "sku-1", token=relay.token("other"))
    assert refused.returncode == 3
    assert "4403" in refused.stderr and "Traceback" not in refused.stderr
    assert "1 pending" in _client_cli(relay, data, "status").stdout


def test_bad_input_exits_2_with_a_message(relay: RelayProcess, tmp_path: Path) -> None:
    data = tmp_path / "cli"
    for args in (("cart", "acme/c-1", "add", "sku-1", "0"), ("cart", "acme/x/y/z", "show"),
                 ("cart", "acme/c-1", "add", "sku-1", "--attr", "novalue")):
        done = _client_cli(relay, data, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stderr.startswith("syncline client: ") and "Traceback" not in done.stderr


@pytest.mark.anyio
async def test_watch_prints_remote_changes_live_and_stops_on_sigterm(relay: RelayProcess, tmp_path: Path) -> None:
    watch = Child("-m", "syncline.app.cli", "client", "--url", base_url(relay), "--token", relay.token("acme"),
                  "--data-dir", str(tmp_path / "watcher"), "watch", CART)
    try:
        watch.read_until(f"{CART}: connected", 30)
        async with client(tmp_path / "editor", base_url(relay), relay.token("acme")) as c:
            (await c.cart(CART)).add_item("sku-live", 3)
            await c.replica(CART).wait_synced(10)
        await anyio.to_thread.run_sync(watch.read_until, "change from relay", 10)
        line = await anyio.to_thread.run_sync(watch.read_until, "  sku-live", 10)
        assert line.split()[-1] == "3"
        # Another process on the watcher's data directory: a follower; the watcher delivers its edit.
        edit = await anyio.to_thread.run_sync(
            lambda: _client_cli(relay, tmp_path / "watcher", "cart", "acme/c-1", "add", "sku-local", "2"))
        assert edit.returncode == 0 and "synced, 0 pending" in edit.stdout, (edit.stdout, edit.stderr)
        await anyio.to_thread.run_sync(watch.read_until, "change from device", 10)
        assert stored_cart(relay, CART).view().total_quantity == 5
        watch.process.send_signal(signal.SIGTERM)
        assert watch.process.wait(timeout=10) == 0
    finally:
        watch.kill()


def test_show_on_a_replica_that_never_synced_says_so_and_exits_1(tmp_path: Path) -> None:
    for kind, doc in (("cart", "acme/c-1"), ("stock", "acme/loc-1")):
        done = subprocess.run(
            [sys.executable, "-m", "syncline.app.cli", "client", "--url", "ws://127.0.0.1:1", "--token", "t",
             "--data-dir", str(tmp_path / "cli"), "--connect-timeout", "1", kind, doc, "show"],
            capture_output=True, text=True, timeout=60, cwd=REPO,
        )
        assert done.returncode == 1, (done.stdout, done.stderr)
        [line] = done.stderr.splitlines()
        assert line.startswith(f"syncline client: acme/{kind}/") and "never synced" in line


def test_show_with_a_refused_token_exits_3_in_one_line(relay: RelayProcess, tmp_path: Path) -> None:
    data = tmp_path / "cli"
    assert _client_cli(relay, data, "cart", "acme/c-1", "add", "sku-1", "3").returncode == 0
    fresh = tmp_path / "fresh"
    refused = _client_cli(relay, fresh, "cart", "acme/c-1", "show", token=relay.token("other"))
    assert refused.returncode == 3, (refused.stdout, refused.stderr)
    assert len(refused.stderr.splitlines()) == 1 and "Traceback" not in refused.stderr


def test_show_on_a_fresh_replica_catches_up_first(relay: RelayProcess, tmp_path: Path) -> None:
    assert _client_cli(relay, tmp_path / "writer", "cart", "acme/c-1", "add", "sku-1", "3").returncode == 0
    shown = _client_cli(relay, tmp_path / "reader", "cart", "acme/c-1", "show")
    assert shown.returncode == 0, shown.stderr
    assert "1 lines, 3 items" in shown.stdout and shown.stderr == ""
