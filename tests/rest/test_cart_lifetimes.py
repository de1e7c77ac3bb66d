"""Cart lifetimes on a relay with a short idle time and retention: last_accessed_at, abandoned, the sweep."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import anyio
import httpx
import pytest

from harness.ypeer import ypeer
from tests.rest.conftest import catalogued
from tests.rest.inprocess import InProcessRelay

IDLE = 1.0
RETENTION = 2.0
CART = "/v1/tenants/acme/carts/{}"


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[InProcessRelay]:
    made = InProcessRelay(catalogued(tmp_path / "relay"), guest_tenant=("acme",), cart_idle_seconds=IDLE,
                          cart_retention_seconds=RETENTION, cart_sweep_seconds=0.2, room_idle_seconds=0.3).start()
    try:
        yield made
    finally:
        made.stop()


def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def stored_docs(relay: InProcessRelay) -> set[str]:
    path = relay.data_dir / "syncline.sqlite3"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT doc FROM updates UNION SELECT doc FROM snapshots UNION SELECT doc FROM doc_access")
        return {row[0] for row in rows}


def test_a_cart_shows_when_it_was_last_accessed_and_turns_abandoned_when_idle(relay: InProcessRelay) -> None:
    with relay.client(relay.token("acme")) as api:
        before = time.time()
        written = api.post(CART.format("c1") + "/items", json={"product": "tee"})
        after = time.time()
        assert written.json()["status"] == "open"
        accessed = written.json()["last_accessed_at"]
        assert before * 1000 - 1 <= accessed <= after * 1000 + 1
        read = api.get(CART.format("c1"))
        assert (read.json()["status"], read.json()["last_accessed_at"]) == ("open", accessed)
        # Reads do not count as accesses: the cart turns abandoned however often it is read.
        wait_for(lambda: api.get(CART.format("c1")).json()["status"] == "abandoned")
        idle = api.get(CART.format("c1"))
        assert idle.json()["last_accessed_at"] == accessed
        assert idle.headers["etag"] == read.headers["etag"]  # the content did not change
        assert api.get(CART.format("never-touched")).json()["last_accessed_at"] is None
        # An edit brings it back.
        assert api.post(CART.format("c1") + "/items", json={"product": "tee"}).json()["status"] == "open"
        assert api.get(CART.format("c1")).json()["status"] == "open"
    # Accesses are kept in the store, across restarts.
    relay.restart()
    with relay.client(relay.token("acme")) as api:
        assert api.get(CART.format("c1")).json()["last_accessed_at"] > accessed


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_sweep_deletes_abandoned_guest_carts_only_and_never_one_with_a_connection(
    relay: InProcessRelay, anyio_backend: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="syncline.lifetimes")
    owner = relay.token("acme")
    async with httpx.AsyncClient(base_url=relay.http_url, timeout=10) as http:
        sessions = [(await http.post("/v1/tenants/acme/guest-sessions")).json() for _ in range(2)]
        idle_guest, connected_guest = (session["cart"] for session in sessions)
        for session in sessions:
            added = await http.post(CART.format(session["cart"]) + "/items", json={"product": "tee"},
                                    headers={"Authorization": f"Bearer {session['token']}"})
            assert added.status_code == 200
        user_cart = await http.post(CART.format("user-1") + "/items", json={"product": "tee"},
                                    headers={"Authorization": f"Bearer {owner}"})
        assert user_cart.status_code == 200
        guest_url = relay.url(f"acme/cart/{connected_guest}", sessions[1]["token"])
        async with ypeer(guest_url):
            with anyio.fail_after(10):
                while f"acme/cart/{idle_guest}" in await anyio.to_thread.run_sync(stored_docs, relay):
                    await anyio.sleep(0.05)
            # Well past the retention, the connected guest's cart is still there, as is the user's.
            await anyio.sleep(RETENTION + 0.5)
            docs = await anyio.to_thread.run_sync(stored_docs, relay)
            assert {f"acme/cart/{connected_guest}", "acme/cart/user-1"} <= docs
            assert f"acme/cart/{idle_guest}" not in docs
        # Once its peer has gone, it is swept in turn; the user's cart never is.
        with anyio.fail_after(10):
            while f"acme/cart/{connected_guest}" in await anyio.to_thread.run_sync(stored_docs, relay):
                await anyio.sleep(0.05)
        assert "acme/cart/user-1" in await anyio.to_thread.run_sync(stored_docs, relay)
        gone = await http.get(CART.format(idle_guest), headers={"Authorization": f"Bearer {owner}"})
        assert (gone.json()["total_quantity"], gone.json()["last_accessed_at"]) == (0, None)
        metrics = (await http.get("/metrics")).text
    assert "syncline_carts_swept_total 2.0" in metrics
    sweeps = [r for r in caplog.records if r.getMessage().startswith("swept abandoned guest carts: ")]
    assert sweeps and sum(r.deleted for r in sweeps) == 2
